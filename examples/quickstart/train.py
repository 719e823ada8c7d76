"""A stand-in training script: each node reports its rank and 'trains' for EPOCHS epochs."""

import argparse
import os
import time

parser = argparse.ArgumentParser()
parser.add_argument("--rank", type=int, default=0)
parser.add_argument("--nodes", default="127.0.0.1", help="the nodes' IPs, one per line")
args = parser.parse_args()

nodes = args.nodes.split()
epochs = int(os.environ.get("EPOCHS", "1"))
print(f"rank {args.rank} of {len(nodes)} nodes, training for {epochs} epochs", flush=True)
for epoch in range(1, epochs + 1):
    time.sleep(0.1)
    print(f"rank {args.rank}: epoch {epoch}/{epochs} loss={1.0 / epoch:.3f}", flush=True)
print(f"rank {args.rank}: done", flush=True)
