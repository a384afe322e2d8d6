"""Train the score prior (same as the `hidd-train` command); torchrun-compatible."""
from hidd.cli.train import main

if __name__ == "__main__":
    main()
