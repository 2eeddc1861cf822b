"""Embeddings of trained models: heads on the pooled pre-logits features (`winnow.embeddings.heads`: knn,
centroid, gmm, logistic, svm, each with a reject option for images far from every class); later search and
active learning."""
