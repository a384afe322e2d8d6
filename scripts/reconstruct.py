"""Deblur photos (same as the `hidd-reconstruct` command): python scripts/reconstruct.py --input ... --output ..."""
from hidd.cli.reconstruct import main

if __name__ == "__main__":
    main()
