# faceqan's service on a CPU: docker build -t faceqan . && docker run -p 8080:8080 -e FACEQAN_API_KEY=... faceqan
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# The CPU build of torch first, so that nothing pulls a multi-GB CUDA build.
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN pip install --no-cache-dir ".[serve,onnx]"
USER nobody
EXPOSE 8080
# Listening on every interface needs an API key (FACEQAN_API_KEY); SIGTERM (docker stop) drains requests in flight.
CMD ["faceqan", "serve", "--host", "0.0.0.0", "--port", "8080"]
