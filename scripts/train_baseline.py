"""Train a comparison network (same as the `hidd-train-baseline` command)."""
from hidd.cli.train_baseline import main

if __name__ == "__main__":
    main()
