"""``negtransfer datasets``: the built-in datasets with their kinds, sizes and licenses."""

from __future__ import annotations


def datasets() -> None:
    """List the built-in datasets with their kinds, sizes and licenses.

    Kinds: table (one row per example, a label column per task), per-task-rows
    (each row belongs to one task), domains (per-task rows over one label
    space), time-series (records x timesteps; `negtransfer compare` only),
    images (N x C x H x W) and sequences (N x T x F); feat. shows their shape.
    """
    from rich import box
    from rich.console import Console
    from rich.markup import escape  # install hints hold brackets: pip install "negtransfer[datasets]"
    from rich.table import Table

    from negtransfer.data.builtin import list_builtin

    rows = list_builtin()
    table = Table(title="Built-in datasets", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)  # fits 80 columns
    for header in ("name", "kind", "tasks", "rows", "feat.", "source", "avail."):
        table.add_column(header, no_wrap=True)
    short = {"binary": "bin", "regression": "reg", "multiclass": "cls"}
    for row in rows:
        name = f"{row['name']} (default)" if row["default"] else row["name"]
        installed = "yes" if row["available"] == "yes" else "no"
        tasks = f"{row['tasks']} {short.get(row['task_kind'], row['task_kind'])}"
        shape = row.get("input_shape") or [row["features"]]
        features = "x".join(map(str, shape)) if len(shape) > 1 else str(row["features"])  # images, sequences: a shape
        table.add_row(*(escape(cell) for cell in (name, row["kind"], tasks, str(row["rows"]), features, row["source"],
                                                   installed)))
    console = Console()
    console.print(table)
    missing = [row for row in rows if row["available"] != "yes"]
    if missing:
        console.print("To install:")
        for row in missing:
            console.print(escape(f"  {row['name']}: {row['available'][len('no: '):]}"), soft_wrap=True)
    console.print("Licenses (details: docs/datasets.md):")
    for row in rows:
        console.print(escape(f"  {row['name']}: {row['license']}"), soft_wrap=True)
