"""Pictures that explain a score: the adversarial noise FaceQAN found for a face (the paper's Fig. 1)."""
