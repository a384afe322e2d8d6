"""hidd: defocus deblurring with score-based diffusion models (HIDD-DM and beyond)."""

__version__ = "0.1.0"
