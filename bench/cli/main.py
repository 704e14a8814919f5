"""The ``shieldbench`` command line (also ``python -m bench``): the only code that talks to users."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.cli.progress import console as _console

DATA_HELP = (
    "data location: a CIFAR-10 archive (cifar10-jpeg.tar.gz, cifar-10-python.tar.gz), the "
    "extracted cifar-10-batches-py/, or an image-folder directory <split>/<class>/*.png|jpg. "
    "Default: $SHIELDBENCH_DATA, then ../shared/data beside the checkout. Decoded arrays are "
    "cached under $SHIELDBENCH_CACHE (default ~/.cache/shieldbench)."
)


# ----------------------------------------------------------------------------- train
def _train_command(args: argparse.Namespace) -> str:
    parts = [
        "shieldbench", "train", "--arch", args.arch, "--seed", str(args.seed), "--epochs", str(args.epochs),
        "--batch-size", str(args.batch_size), "--lr", str(args.lr), "--weight-decay", str(args.weight_decay),
        "--schedule", args.schedule, "--warmup-epochs", str(args.warmup_epochs),
    ]
    if args.cycles != 1:
        parts += ["--cycles", str(args.cycles)]
    if args.transform:
        parts += ["--transform", args.transform]
    if args.init_from:
        parts += ["--init-from", args.init_from]
    parts += ["--name", args.name]
    return shlex.join(parts)


def cmd_train(args: argparse.Namespace) -> int:
    import jax
    import numpy as np
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from bench.core.versions import versions
    from bench.core.data import load_dataset
    from bench.zoo.train import TrainConfig, TrainEvent, Trainer, default_run_dir, fit
    from bench.zoo.store import ZOO_DIR, load_model, save_model

    console = _console()
    config = TrainConfig(
        arch=args.arch, seed=args.seed, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        weight_decay=args.weight_decay, schedule=args.schedule, warmup_epochs=args.warmup_epochs,
        transform=args.transform, init_from=args.init_from, cycles=args.cycles,
    )
    transform = None
    if args.transform:
        from bench.core.transform import build_transform

        transform = build_transform(args.transform)
    init = init_sha = None
    if args.init_from:
        base = load_model(args.init_from)
        init, init_sha = base.variables, base.card["weights_sha256"]
    train_set = load_dataset("cifar10", "train", data=args.data)
    test_set = load_dataset("cifar10", "test", data=args.data)
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(config)
    console.print(f"[bold]train[/] {config}\ncheckpoints: {run_dir}")
    steps = len(train_set) // config.batch_size
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3f}  {task.fields[rate]:.0f} img/s"), TimeRemainingColumn(),
        console=console,
    ) as progress:
        total = progress.add_task("all epochs", total=config.epochs * steps, loss=float("nan"), rate=0.0)
        epoch_task = progress.add_task("epoch", total=steps, loss=float("nan"), rate=0.0)

        def on_event(e: TrainEvent) -> None:
            if e.kind == "start":
                progress.update(total, completed=e.epoch * steps)
                if e.epoch:
                    progress.console.log(f"resuming after epoch {e.epoch}")
            elif e.kind == "step":
                progress.update(epoch_task, description=f"epoch {e.epoch + 1}", completed=e.step,
                                loss=e.loss, rate=e.images_per_s)
                progress.update(total, completed=e.epoch * steps + e.step, loss=e.loss, rate=e.images_per_s)
            else:
                progress.console.log(
                    f"epoch {e.epoch}/{config.epochs}: train loss {e.loss:.4f}, "
                    f"{e.images_per_s:.0f} img/s, eval accuracy {e.eval_accuracy:.4f} (every 5th test image)"
                )

        state, meta = fit(config, train_set, test_set, run_dir=run_dir, transform=transform,
                          init_variables_=init, on_event=on_event, max_epochs=args.max_epochs,
                          init_sha256=init_sha)
    if meta["epoch"] < config.epochs:
        console.print(f"stopped after epoch {meta['epoch']}/{config.epochs}; run the same command to resume")
        return 0
    trainer = Trainer(config, steps, transform)
    t0 = time.perf_counter()
    acc = trainer.accuracy(state, test_set)
    card = {
        "arch": config.arch,
        "arch_kwargs": {},
        "input_shape": [32, 32, 3],
        "classes": list(test_set.classes),
        "config": config.as_dict(),
        "command": _train_command(args),
        "seed": config.seed,
        "epochs": config.epochs,
        "wall_time_s": round(meta["wall_time_s"], 1),
        "data": {
            "name": "cifar10", "source": Path(test_set.source).name, "source_sha256": test_set.source_sha256,
            "pillow_version": test_set.pillow_version,
        },
        "test_accuracy": acc,
        "test_images": len(test_set),
        "history": meta["history"],
        **({"seeded_from": meta["seeded_from"]} if "seeded_from" in meta else {}),
        **({"init_from": {"name": config.init_from, "weights_sha256": meta["init_from_sha256"]}}
           if config.init_from else {}),
        "versions": versions(),
        "device": str(jax.devices()[0].device_kind),
    }
    if config.transform:
        xs = test_set.as_float()
        card["test_accuracy_transformed"] = float(np.mean(_predict_transformed(trainer, state, transform, xs)
                                                          == test_set.labels))
    path = save_model(args.name, {"params": state["params"], "batch_stats": state["batch_stats"]}, card,
                      Path(args.zoo_dir) if args.zoo_dir else ZOO_DIR)
    console.print(f"test accuracy {acc:.4f} on {len(test_set)} images ({time.perf_counter() - t0:.0f} s); wrote {path}")
    return 0


def _predict_transformed(trainer, state, transform, xs, batch_size: int = 500):
    import jax
    import jax.numpy as jnp
    import numpy as np

    variables = {"params": state["params"], "batch_stats": state["batch_stats"]}
    apply = jax.jit(lambda x, k: jnp.argmax(trainer.model.apply(variables, transform(x, k), train=False), -1))
    out = [np.asarray(apply(xs[i : i + batch_size], jax.random.key(i))) for i in range(0, len(xs), batch_size)]
    return np.concatenate(out)


# ----------------------------------------------------------------------------- eval
def cmd_eval(args: argparse.Namespace) -> int:
    import numpy as np

    from bench.core.data import load_dataset, subset_indices
    from bench.zoo.store import load_model

    from bench.zoo.store import list_models

    console = _console()
    models = [load_model(name) for name in (args.model or list_models())]
    if not models:
        console.print("the zoo is empty")
        return 1
    test_set = load_dataset("cifar10", "test", data=args.data)
    for model in models:
        name = model.name
        idx = subset_indices(len(test_set), args.n)
        correct = 0
        t0 = time.perf_counter()
        for i in range(0, len(idx), 500):
            sel = idx[i : i + 500]
            logits = model.predict(test_set.as_float(sel))
            correct += int(np.sum(np.asarray(logits).argmax(-1) == test_set.labels[sel]))
        dt = time.perf_counter() - t0
        card_acc = model.card.get("test_accuracy")
        console.print(
            f"{name}: test accuracy {correct / len(idx):.4f} on {len(idx)} images "
            f"(card: {card_acc:.4f} on {model.card.get('test_images')}; {len(idx) / dt:.0f} img/s)"
        )
    return 0


# ----------------------------------------------------------------------------- data
def cmd_data(args: argparse.Namespace) -> int:
    from bench.core.data import fetch_cifar10, find_source, load_dataset, resolve_data_location

    console = _console()
    if args.data_command == "fetch":
        dest = Path(args.dest) if args.dest else Path.home() / ".cache" / "shieldbench" / "downloads"
        path = fetch_cifar10(dest, timeout=args.timeout)
        console.print(f"downloaded and verified {path}; use it with --data {path}")
        return 0
    location = resolve_data_location(args.data)
    console.print(f"location: {location}\nsource:   {find_source(location)}")
    if args.protocol:  # the protocol's split, decoded at its crop (an image folder's other splits are not needed)
        from bench.eval.protocol import load_protocol

        p = load_protocol(args.protocol)
        loads = [(p.dataset, p.split, p.image_size, p.resize)]
    else:
        loads = [("cifar10", split, None, None) for split in ("train", "test")]
    for name, split, image_size, resize in loads:
        d = load_dataset(name, split, data=args.data, image_size=image_size, resize=resize)
        console.print(f"{split}: {len(d)} images {d.images.shape[1:]}, {len(d.classes)} classes, "
                      f"sha256 {d.source_sha256[:16]} Pillow {d.pillow_version}")
    return 0


# ----------------------------------------------------------------------------- fd-stats
def cmd_fd_stats(args: argparse.Namespace) -> int:
    from defenses.fd import BAND_STATS, as_band, write_band_stats

    from bench.core.data import load_dataset

    train = load_dataset("cifar10", "train", data=args.data)
    out = Path(args.out) if args.out else BAND_STATS
    write_band_stats(train.images, {
        "command": "shieldbench fd-stats", "dataset": "cifar10", "split": "train",
        "source": Path(train.source).name, "source_sha256": train.source_sha256,
        "pillow_version": train.pillow_version,
    }, out)
    mask = as_band(15, out)
    _console().print(f"wrote {out}; the n = 15 accuracy-sensitive band:\n" +
                     "\n".join(" ".join("X" if v else "." for v in row) for row in mask))
    return 0


# ----------------------------------------------------------------------------- quilting-db
def cmd_quilting_db(args: argparse.Namespace) -> int:
    from defenses.quilting import write_database

    training = None
    if args.protocol:  # that protocol's dataset's training split, at its crop
        from bench.core.data import TrainingData
        from bench.eval.protocol import load_protocol

        p = load_protocol(args.protocol)
        training = TrainingData(p.dataset, args.data, p.image_size, p.resize)
    path = write_database(args.patch, args.size, args.seed, data=args.data, training=training)
    _console().print(f"wrote {path}")
    return 0


# ----------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="shieldbench",
        description="Benchmark image preprocessing defenses against adversarial attacks (JAX).",
        epilog=DATA_HELP,
    )
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a zoo model with optax (resumable)", epilog=DATA_HELP)
    t.add_argument("--arch", default="resnet20", help="resnet20, resnet32, resnet56 (default resnet20)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--lr", type=float, default=0.05, help="peak learning rate")
    t.add_argument("--weight-decay", type=float, default=5e-4)
    t.add_argument("--schedule", choices=("cosine", "onecycle"), default="cosine")
    t.add_argument("--warmup-epochs", type=float, default=1.0)
    t.add_argument("--cycles", type=int, default=1,
                   help="cosine only: split the epochs into this many equal cycles (warm restarts; default 1)")
    t.add_argument("--transform", help="transform spec applied to training images, e.g. 'jpeg(quality=20)'")
    t.add_argument("--init-from", help="zoo model to fine-tune from")
    t.add_argument("--name", required=True, help="zoo name to write when training completes")
    t.add_argument("--max-epochs", type=int, help="stop after this epoch (resume later with the same command)")
    t.add_argument("--run-dir", help="checkpoint directory (default: <cache>/runs/<arch>-s<seed>-<hash>)")
    t.add_argument("--zoo-dir", help="where to write the model (default: the package zoo)")
    t.add_argument("--data", help=DATA_HELP)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="test accuracy of zoo models", epilog=DATA_HELP)
    e.add_argument("--model", action="append", help="zoo model name (repeatable; default: all)")
    e.add_argument("--n", type=int, default=10000, help="number of test images (a fixed random subset)")
    e.add_argument("--data", help=DATA_HELP)
    e.set_defaults(func=cmd_eval)

    d = sub.add_parser("data", help="inspect or fetch datasets", epilog=DATA_HELP)
    dsub = d.add_subparsers(dest="data_command", required=True)
    f = dsub.add_parser("fetch", help="download the official CIFAR-10 release and verify its md5")
    f.add_argument("dataset", choices=("cifar10",))
    f.add_argument("--dest", help="directory to write cifar-10-python.tar.gz into")
    f.add_argument("--timeout", type=float, default=10.0, help="network timeout in seconds")
    i = dsub.add_parser("info", help="show where data is found and decode it into the cache")
    i.add_argument("--data", help=DATA_HELP)
    i.add_argument("--protocol", help="decode this protocol's dataset split at its image size (default: CIFAR-10)")
    d.set_defaults(func=cmd_data)

    fs = sub.add_parser("fd-stats", help="compute Feature Distillation's band statistics from the training set")
    fs.add_argument("--out", help="output JSON (default: the package's defenses/data/fd_band_stats.json)")
    fs.add_argument("--data", help=DATA_HELP)
    fs.set_defaults(func=cmd_fd_stats)

    qd = sub.add_parser("quilting-db", help="build the image-quilting patch database from the training set")
    qd.add_argument("--patch", type=int, default=5)
    qd.add_argument("--size", type=int, default=20000, help="number of patches")
    qd.add_argument("--seed", type=int, default=0)
    qd.add_argument("--protocol", help="build it from this protocol's dataset (its train/ split, at the protocol's "
                                       "image size; default: CIFAR-10)")
    qd.add_argument("--data", help=DATA_HELP)
    qd.set_defaults(func=cmd_quilting_db)

    from bench.cli.commands import add_parsers

    add_parsers(sub, DATA_HELP)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for a user error, with a one-line message)."""
    args = build_parser().parse_args(argv)  # (--help and usage errors exit here, before JAX is imported)
    from bench.core.data import DataError
    from bench.eval.results import ResultsError
    from bench.zoo.store import ZooError
    from bench.zoo.train import CheckpointError

    try:
        return int(args.func(args) or 0)
    except (DataError, ZooError, CheckpointError, ResultsError, ValueError, TimeoutError) as e:
        print(f"shieldbench: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # a host-code defense's error, wrapped by XLA's callback machinery
        from bench.core.host import host_error_in

        message = host_error_in(e)
        if message is None:
            raise
        print(f"shieldbench: error: {message}", file=sys.stderr)
        return 2
    finally:
        if "bench.submissions.sandbox" in sys.modules:  # a submission's workers end with the command
            sys.modules["bench.submissions.sandbox"].close_all()


if __name__ == "__main__":
    sys.exit(main())
