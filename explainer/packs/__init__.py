"""Model packs: a recognizer, a latent space transformer and a decoder, built in (`catalogue`) or made by
users on disk (`store`, `create`), with the threshold calibration and checkpoint identification they need."""
