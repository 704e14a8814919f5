"""Training and inference throughput (img/s) of the CIFAR ResNets on this machine.

Run: ``python -m bench.perf.throughput [--arch resnet20 resnet32] [--seconds 20]``.
``--update-cards`` records the figures in the zoo cards of models with that architecture.
Timings are warm (after compilation), on synthetic images, for the batch sizes printed.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from bench.core.timing import rate


def run(arch: str, seconds: float) -> dict[str, float]:
    from bench.zoo.train import TrainConfig, Trainer

    out = {}
    for batch in (64, 128):
        trainer = Trainer(TrainConfig(arch=arch, batch_size=batch), 100)
        state = trainer.init_state()
        x = np.random.default_rng(0).integers(0, 256, (batch, 32, 32, 3), dtype=np.uint8)
        y = np.zeros(batch, np.int32)
        holder = {"state": state}

        def step():
            holder["state"], loss = trainer.train_step(holder["state"], x, y, jax.random.key(0))
            return loss

        out[f"train_img_per_s_batch{batch}"] = rate(step, batch, seconds)
    variables = {"params": holder["state"]["params"], "batch_stats": holder["state"]["batch_stats"]}
    for batch in (128, 500):
        x = jnp.asarray(np.random.default_rng(1).integers(0, 256, (batch, 32, 32, 3), dtype=np.uint8))
        out[f"predict_img_per_s_batch{batch}"] = rate(lambda: trainer.predict(variables, x), batch, seconds)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", nargs="+", default=["resnet20", "resnet32"])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--update-cards", action="store_true")
    args = p.parse_args()
    from tabulate import tabulate

    device = jax.devices()[0].device_kind
    rows, results = [], {}
    for arch in args.arch:
        results[arch] = run(arch, args.seconds)
        rows.append([arch, *(f"{v:.0f}" for v in results[arch].values())])
    headers = ["arch", *next(iter(results.values())).keys()]
    print(f"device: {device}, {jax.device_count()} device(s)")
    print(tabulate(rows, headers=headers, tablefmt="github"))
    if args.update_cards:
        import json

        from bench.core.io import atomic_write_json
        from bench.zoo.store import ZOO_DIR

        for path in sorted(ZOO_DIR.glob("*.json")):
            card = json.loads(path.read_text())
            if card["arch"] in results:
                card["throughput"] = {"device": device, **{k: round(v, 1) for k, v in results[card["arch"]].items()},
                                      "command": "python -m bench.perf.throughput --update-cards"}
                atomic_write_json(path, card)
                print(f"updated {path.name}")


if __name__ == "__main__":
    main()
