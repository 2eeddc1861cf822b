"""Pretraining an encoder on unlabelled images (`winnow pretrain`): autoencoder, SimCLR, BYOL."""
