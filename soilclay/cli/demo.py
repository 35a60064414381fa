"""``soilclay demo-world``: generate (or extend) the synthetic demo world."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("demo-world")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True, help="World folder.")
@click.option("--size", type=click.Choice(["small", "demo"]), default="demo", show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--samples", "n_samples", type=int, default=None, help="Number of soil samples (default per size).")
@click.option("--add-scenes", "add_scenes", type=int, default=None,
              help="Extend an existing world by N new Sentinel-2 dates (and the Sentinel-1 passes among them).")
@click.option("--workers", type=int, default=None, help="Processes for scene rendering (default: CPU count).")
def demo_world(out_dir: Path, size: str, seed: int, n_samples: int | None, add_scenes: int | None,
               workers: int | None) -> None:
    """Generate a deterministic synthetic world: scenes (STAC + COG), samples, parcels, truth."""
    from soilclay.demo import world

    if add_scenes is not None:
        summary = world.add_scenes(out_dir, add_scenes, workers=workers, progress=True)
    else:
        summary = world.generate(out_dir, size=size, seed=seed, n_samples=n_samples, workers=workers,
                                 progress=True)
    click.echo(summary.render())
