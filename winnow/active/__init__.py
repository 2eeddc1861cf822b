"""Few labels: choose what to label next (`winnow query`), pseudo-label the rest (`winnow pseudo-label`), and
self-train in rounds (`winnow loop`)."""
