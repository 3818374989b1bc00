"""The dataset layer: one ``Dataset`` of lazy ``Item``s for every benchmark format."""

from sam_bench.data.base import Dataset, Instance, Item, Sample
from sam_bench.data.catalog import open_dataset

__all__ = ["Dataset", "Instance", "Item", "Sample", "open_dataset"]
