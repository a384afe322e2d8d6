"""Deblur photos (same as the `hidd-reconstruct` command): python scripts/reconstruct.py --input ... --output ...

On several GPUs: torchrun --nproc_per_node=N scripts/reconstruct.py --input ... --output ... (see hidd-reconstruct
--help)."""
from hidd.cli.reconstruct import main

if __name__ == "__main__":
    main()
