"""Few labels: choose what to label next (`winnow query`) and pseudo-label the rest (`winnow pseudo-label`)."""
