"""The output folder of a reconstruction run: writable, resumable, and its metrics.csv.

metrics.csv holds one row per finished image and is rewritten atomically after each, so a kill at any
moment leaves the complete table of the images finished so far, and a run can be resumed
(hidd-reconstruct --skip-existing): the rows come back from the file, and an image counts as done when
its row and its output PNG both exist. A resume must use the config the folder's results came from.
Rows are kept in input order, so a resumed run's table equals an uninterrupted one's. File names that
are not UTF-8 are written back byte for byte (surrogateescape).
Under torchrun (hidd.sharding) rank 0 keeps metrics.csv and every other rank r its own rows in
metrics.rank{r}.csv beside it, written the same way; rank 0 merges them into metrics.csv at the end and
removes them, and a resume merges any that a killed sharded run left.
"""
from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

import numpy as np
import yaml

from hidd.atomic import write_text_atomic
from hidd.paired import Pair
from hidd.text import printable

FIELDS = ["name", "input", "height", "width", "nfe", "seconds", "radius", "share", "reason", "psnr_input",
          "ssim_input", "psnr", "ssim"]  # nfe: the photo's own network evaluations (a batch's photos' may differ).
# radius: PSF radius used (blind estimate unless given); empty without a blur model.
# share: of the deblurring kept by the no-harm guard (hidd.no_harm), its hedge included: 1 all, 0 the input
# unchanged (made gray where it is a black-and-white photo, hidd.colour); empty: guard off.
# reason: what bound the share (hidd.stages.select): full, hedge, noise, ringing, trust, in-focus, '+'-joined
EARLIER_FIELDS = {  # the tables of earlier hidds, by the column they lack: a run of theirs is not resumed
    "share": [f for f in FIELDS if f not in ("share", "reason")],
    "reason": [f for f in FIELDS if f != "reason"],
}
_ENCODING = dict(encoding="utf-8", errors="surrogateescape")
# What a run writes beside its results (OUTPUT/NAME.png): folders that hold no results (hidd.report's pictures,
# --save-every's iterates, TensorBoard events), and the page of pictures
COMPARE, ITERATES, TB = "compare", "iterates", "tb"
INDEX = "index.html"
RUN_FILE = "run.yaml"  # the run's options beside config.yaml: method, checkpoint, seed, batch size, device, precision


def result_path(out: Path, name: str) -> Path:
    """Where the result of photo `name` goes in output folder `out`."""
    return out / f"{name}.png"


def part_path(out: Path, rank: int) -> Path:
    """Where rank `rank` (≥ 1) of a sharded run keeps its metrics rows until rank 0 merges them."""
    return out / f"metrics.rank{rank}.csv"


def parts(out: Path) -> list[Path]:
    """The ranks' metrics rows in output folder `out` not merged yet (a sharded run's, running or killed)."""
    return sorted(out.glob("metrics.rank*.csv"))


def compare_path(out: Path, name: str) -> Path:
    """Where the side-by-side picture of photo `name` goes in output folder `out` (--compare, hidd.report)."""
    return out / COMPARE / f"{name}.png"


def is_run_output(folder: Path) -> bool:
    """Whether a folder holds a reconstruction run's outputs (its metrics.csv and config.yaml)."""
    return (folder / "metrics.csv").is_file() and (folder / "config.yaml").is_file()


def check_outputs(out: Path, pairs: list[Pair], pictures: bool, resuming: bool) -> None:
    """ValueError in one line, before anything is written, where the run would replace a file it should not:
    - an image it reads (an input or a target) that a result (or with `pictures` its picture) would overwrite;
    - for a new run (not `resuming`), an earlier run's results (finish it with --skip-existing, or choose another
      folder: results are never mixed or lost), or files no hidd run wrote (a metrics.csv that is not hidd's; a
      config.yaml, index.html, run.yaml or result-named image with no hidd metrics.csv beside it). A resumed run
      checks the table itself (MetricsTable.read_existing)."""
    def written(name: str) -> list[Path]:
        return [result_path(out, name)] + ([compare_path(out, name)] if pictures else [])

    read = {path.resolve() for pair in pairs for path in (pair.blurred, pair.sharp) if path is not None}
    for pair in pairs:
        clash = next((path for path in written(pair.name) if path.resolve() in read), None)
        if clash is not None:
            raise ValueError(f"--output {out}: the result {clash} would overwrite an input or target; choose "
                             "another folder")
    if not out.is_dir() or resuming:
        return
    if _hidd_table(out / "metrics.csv") or parts(out):
        found = "metrics.csv" if _hidd_table(out / "metrics.csv") else parts(out)[0].name
        raise ValueError(f"--output {out}: holds an earlier run's results ({found}); finish that run with "
                         "--skip-existing and the same options, or choose another --output")
    stray = [out / "config.yaml", out / INDEX, out / RUN_FILE] + [path for pair in pairs for path in written(pair.name)]
    found = next((path for path in stray if path.is_file()), None)
    if found is not None:
        raise ValueError(f"{found}: --output holds it but no hidd metrics.csv, so no hidd run wrote it; hidd replaces "
                         "no file it did not write: choose another --output")


def _hidd_table(path: Path) -> bool:
    """Whether `path` is a hidd metrics.csv (of this hidd or an earlier one); False where there is none; ValueError
    where the file is not hidd's."""
    if not path.is_file():
        return False
    try:
        with open(path, newline="", **_ENCODING) as f:
            fields = csv.DictReader(f).fieldnames
    except (OSError, csv.Error) as e:
        raise ValueError(f"{path}: cannot be read ({e}); move it away or choose another --output") from None
    if fields != FIELDS and fields not in EARLIER_FIELDS.values():
        raise ValueError(f"{path}: not a hidd metrics table (columns {fields}), so hidd will not replace it; move it "
                         "away or choose another --output")
    return True


def prepare_output(out: Path, given: str) -> None:
    """Create the output folder and make sure files can be created in it (ValueError in one line if not)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        raise ValueError(f"--output {given}: cannot be written ({e.strerror or e})") from None


def check_same_config(config, path: Path) -> None:
    """For --skip-existing: the results already in the folder must come from the same config (and so the same
    method: a learned baseline's config has other sections than the score prior's). A key the stored config lacks
    (one added to hidd since it was written) counts as its default, which keeps what hidd did before the key."""
    current = yaml.safe_load(config.to_yaml())
    stored = _read_yaml(path)
    if isinstance(stored, dict) and set(stored) != set(current):
        raise ValueError(f"{path}: the results there come from another method (its config has the sections "
                         f"{', '.join(map(str, stored))}); resume with the same options, or choose another --output")
    check_same(path, current, "config", defaults=yaml.safe_load(type(config)().to_yaml()))


def check_same_run(options: dict, path: Path) -> None:
    """For --skip-existing: the results already in the folder must come from the same run options (RUN_FILE)."""
    check_same(path, options, "run options")


def save_run(options: dict, path: Path) -> None:
    """Write the options of a run that are not in its config (method, checkpoint, seed, batch size, ...)."""
    write_text_atomic(path, yaml.safe_dump(options, sort_keys=False))


def check_same(path: Path, current: dict, what: str, defaults: dict | None = None) -> None:
    """ValueError in one line where the YAML at `path` (if any) differs from `current`, naming the first key; a key
    the file lacks takes its value in `defaults` where given."""
    if not path.is_file():
        return
    stored, current = _flat(_read_yaml(path)), _flat(current)
    stored = {**_flat(defaults or {}), **stored}
    differences = sorted(key for key in stored.keys() | current.keys() if stored.get(key) != current.get(key))
    if differences:
        key = differences[0]
        raise ValueError(f"{path}: the results there come from other {what} ({key}: {stored.get(key)!r} there, "
                         f"{current.get(key)!r} now); resume with the same options, or choose another --output")


def _read_yaml(path: Path):
    """A YAML file's contents to resume from; None where there is none; ValueError where it cannot be read."""
    if not path.is_file():
        return None
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ValueError(f"{path}: cannot be read to resume ({type(e).__name__})") from None


def _flat(values, prefix: str = "") -> dict:
    """{'section.key': value} of a nested dict."""
    if not isinstance(values, dict):
        return {prefix: values}
    return {flat_key: v for key, value in values.items()
            for flat_key, v in _flat(value, f"{prefix}.{key}" if prefix else key).items()}


class MetricsTable:
    """The rows of OUTPUT/metrics.csv by image name, in input order."""

    def __init__(self, path: Path, order: list[str]):
        self.path = path  # the metrics.csv file
        self.rank = {name: i for i, name in enumerate(order)}  # input order; other names go last, as found
        self.rows: dict[str, dict] = {}

    def read_existing(self) -> None:
        """Take over the rows of an existing metrics.csv and of the ranks' files a killed sharded run left beside it
        (to resume); ValueError if one is not ours."""
        for path in [self.path] + parts(self.path.parent):
            self.read(path)

    def read(self, path: Path) -> None:
        """Take over the rows of the table at `path` (if any); ValueError if it is not one of ours."""
        if not path.is_file():
            return
        try:
            with open(path, newline="", **_ENCODING) as f:
                reader = csv.DictReader(f)
                rows = list(reader)
        except (OSError, csv.Error) as e:
            raise ValueError(f"{path}: cannot be read to resume ({e}); move it away or choose another "
                             "--output") from None
        lacking = next((column for column, fields in EARLIER_FIELDS.items() if reader.fieldnames == fields), None)
        if lacking is not None:
            raise ValueError(f"{path}: written by an earlier hidd (no '{lacking}' column), which gave other "
                             "outputs; choose another --output")
        if reader.fieldnames != FIELDS or any(None in row or None in row.values() for row in rows):
            raise ValueError(f"{path}: not a hidd metrics table (columns {reader.fieldnames}); "
                             "move it away or choose another --output")
        self.rows.update((row["name"], row) for row in rows)

    def merge_parts(self) -> None:
        """Rank 0 of a sharded run: take over the other ranks' rows (part_path), write the one table, and remove
        their files (only once their rows are in it)."""
        merged = parts(self.path.parent)
        for path in merged:
            self.read(path)
        self.write()
        for path in merged:
            path.unlink(missing_ok=True)

    def done(self, name: str) -> bool:
        """Whether image `name` is finished: its row is here and its output PNG exists."""
        return name in self.rows and result_path(self.path.parent, name).is_file()

    def add(self, row: dict) -> None:
        """Record one finished image and rewrite the file (atomically)."""
        self.rows[row["name"]] = row
        self.write()

    def write(self) -> None:
        text = io.StringIO()
        table = csv.DictWriter(text, fieldnames=FIELDS, lineterminator="\n")
        table.writeheader()
        table.writerows(self.ordered())
        write_text_atomic(self.path, text.getvalue(), errors="surrogateescape")

    def ordered(self) -> list[dict]:
        names = sorted(self.rows, key=lambda name: self.rank.get(name, len(self.rank)))  # stable: others as found
        return [self.rows[name] for name in names]

    def summary(self) -> str:
        """The printed table: one line per image (share: of the deblurring the no-harm guard kept, and the reason what
        bound it) and, with targets, the mean."""
        rows = [{key: value if key in ("name", "input") else _number(value) for key, value in row.items()}
                for row in self.ordered()]
        scored = [r for r in rows if r["psnr"] != ""]
        head = f"{'image':<28} {'NFE':>6} {'sec':>8} {'radius':>7} {'share':>5}"
        head += f" {'PSNR in':>8} {'PSNR':>7} {'SSIM in':>8} {'SSIM':>6}" if scored else ""
        head += " reason" if any(r["reason"] != "" for r in rows) else ""
        lines = [head, "-" * len(head)]
        for r in rows:
            kept = "" if r["share"] == "" else f"{r['share']:g}"
            line = (f"{printable(str(r['name']))[:28]:<28} {r['nfe']!s:>6} {r['seconds']:>8.1f} {r['radius']!s:>7}"
                    f" {kept:>5}")
            if scored and r["psnr"] != "":
                line += f" {r['psnr_input']:>8.2f} {r['psnr']:>7.2f} {r['ssim_input']:>8.3f} {r['ssim']:>6.3f}"
            elif scored:
                line += " " * 33
            lines.append(f"{line} {r['reason']}".rstrip())
        if scored:
            mean = {k: float(np.mean([r[k] for r in scored])) for k in ("psnr_input", "psnr", "ssim_input", "ssim")}
            lines.append("-" * len(head))
            lines.append(f"{'mean':<28} {'':>6} {'':>8} {'':>7} {'':>5} {mean['psnr_input']:>8.2f} "
                         f"{mean['psnr']:>7.2f} {mean['ssim_input']:>8.3f} {mean['ssim']:>6.3f}")
        return "\n".join(lines)


def _number(value):
    """Numbers read back from the file as numbers again (rows resumed from metrics.csv hold strings)."""
    if not isinstance(value, str) or value == "":
        return value
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value
