"""Clustering stage: FAISS k-means, HDBSCAN, and the choice of k."""

from segmenter.cluster.density import DensityClusterer
from segmenter.cluster.kmeans import KMeansClusterer, faiss_has_gpu, nearest
from segmenter.cluster.select import select_k

__all__ = ["DensityClusterer", "KMeansClusterer", "faiss_has_gpu", "nearest", "select_k"]
