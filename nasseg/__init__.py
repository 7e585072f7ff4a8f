"""nasseg: neural architecture search and ablation studies for U-shaped segmentation networks."""
__version__ = "0.1.0"
