"""Count the decisions of the default reconstruction path: the sampler keys it reads and its module constants.

  python scripts/count_decisions.py                 # this checkout
  python scripts/count_decisions.py --root /tmp/old # another checkout (e.g. a git worktree of an older commit)

The default path is every hidd module that `hidd.deblur` imports, directly or not, except the score network and
its layers (hidd.models: architecture, not decisions) and the registry plumbing. Counted:
- sampler keys read: the SamplerConfig fields (hidd.config) whose value the default reads while it deblurs the
  bundled example photos (examples/blurred) with the shipped checkpoint and `fast` (every read of a field
  recorded, but for copying, checking and saving the config: BOOKKEEPING), and the keys configs/presets/fast.yaml
  sets;
- module constants: module-level assignments of numbers (or tuples of numbers) to UPPER_CASE names on that path:
  thresholds, bounds, tolerances, step counts (registries, names of choices and paths are not decisions);
- of those, the constants the default executes: named (directly, or imported by name) in a function, method or
  lambda that runs while the default deblurs those photos (default arguments included). A module on the path
  holds constants of other presets too (the depth map's, the layered step's); these are not the default's.
Run it under the checkout it counts (PYTHONPATH=ROOT when ROOT is not this one). Prints the counts and, with
--list, the names.
"""
from __future__ import annotations

import argparse
import ast
import sys
import threading
from pathlib import Path

import yaml

EXCLUDED = ("hidd.models", "hidd.registry")
# reads that are not decisions: copying a config (dataclasses.replace, asdict), checking every value against its
# rule, printing or saving it
BOOKKEEPING = ("dataclasses.py", "settings.py", "rules.py", "config.py", "copy.py")


def module_path(root: Path, name: str) -> Path | None:
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imports(tree: ast.Module, name: str) -> set[str]:
    """The hidd modules a module imports (absolute imports; `from hidd.x import y` counts hidd.x and hidd.x.y)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("hidd"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hidd") and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def default_path(root: Path, start: str = "hidd.deblur") -> dict[str, ast.Module]:
    """Every hidd module reachable from `start` by imports, parsed (see the module docstring)."""
    seen, todo = {}, [start]
    while todo:
        name = todo.pop()
        if name in seen or name.startswith(EXCLUDED):
            continue
        path = module_path(root, name)
        if path is None:
            continue
        seen[name] = ast.parse(path.read_text())
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(2, len(parts)))  # parent packages run their __init__
        todo.extend(imports(seen[name], name))
    return seen


def sampler_fields(root: Path) -> set[str]:
    tree = ast.parse((root / "hidd" / "config.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "SamplerConfig":
            return {item.target.id for item in node.body if isinstance(item, ast.AnnAssign)}
    raise SystemExit(f"{root}: no SamplerConfig in hidd/config.py")


def _numeric(node) -> bool:
    """A number, a signed one, arithmetic of numbers, or a tuple or list of such."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, (int, float)) and not isinstance(node.value, bool)
    if isinstance(node, ast.UnaryOp):
        return _numeric(node.operand)
    if isinstance(node, ast.BinOp):
        return _numeric(node.left) and _numeric(node.right)
    if isinstance(node, (ast.Tuple, ast.List)):
        return bool(node.elts) and all(_numeric(e) for e in node.elts)
    return False


def constants(tree: ast.Module) -> list[str]:
    """The module's numeric UPPER_CASE constants."""
    names = []
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None and _numeric(node.value):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [t.id for t in targets if isinstance(t, ast.Name) and t.id.isupper()]
    return names


def _own_nodes(function: ast.AST):
    """The nodes a function's own code evaluates: its body and defaults, and of a function defined inside it only the
    defaults and decorators (its body runs when it is called: it is judged by its own code object)."""
    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                for part in child.args.defaults + [d for d in child.args.kw_defaults if d is not None] \
                        + getattr(child, "decorator_list", []):
                    yield part
                    yield from visit(part)
            else:
                yield child
                yield from visit(child)
    yield from visit(function)


def executed_constants(root: Path, modules: dict[str, ast.Module], executed: set[tuple[str, int, str]]) -> set[str]:
    """module.NAME of each constant named in a function, method or lambda of `modules` whose code ran (executed:
    (file, first line, name) of each code object called): directly, imported by name from another module, or as an
    attribute of an imported module. Class bodies and module-level code are not counted (they run on import)."""
    known = {(name, const) for name, tree in modules.items() for const in constants(tree)}
    used = set()
    for name, tree in modules.items():
        own = set(constants(tree))
        imported, module_names = {}, {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    if (node.module, alias.name) in known:
                        imported[alias.asname or alias.name] = f"{node.module}.{alias.name}"
                    elif f"{node.module}.{alias.name}" in modules:
                        module_names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif isinstance(node, ast.Import):
                module_names.update({alias.asname: alias.name for alias in node.names
                                     if alias.asname and alias.name in modules})
        path = str(module_path(root, name).resolve())
        ran = {(line, code) for file, line, code in executed if file == path}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            code = getattr(node, "name", "<lambda>")
            if (node.lineno, code) not in ran and (first, code) not in ran:
                continue
            for sub in _own_nodes(node):
                if isinstance(sub, ast.Name) and sub.id in own:
                    used.add(f"{name}.{sub.id}")
                elif isinstance(sub, ast.Name) and sub.id in imported:
                    used.add(imported[sub.id])
                elif (isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name)
                      and (module_names.get(sub.value.id), sub.attr) in known):
                    used.add(f"{module_names[sub.value.id]}.{sub.attr}")
    return used


def keys_read(root: Path, executed: set[tuple[str, int, str]] | None = None) -> set[str]:
    """The SamplerConfig fields read while `fast` deblurs the bundled examples (see the module docstring); each
    hidd code object called meanwhile is added to `executed` as (file, first line, name)."""
    import torch

    from hidd.config import SamplerConfig
    from hidd.deblur import Deblurrer
    from hidd.imageio import read_image, to_rgb
    from hidd.prior import load_prior

    fields = set(SamplerConfig.__dataclass_fields__)
    read: set[str] = set()
    original = SamplerConfig.__getattribute__

    def recording(self, name):
        if name in fields and not sys._getframe(1).f_code.co_filename.endswith(BOOKKEEPING):
            read.add(name)
        return original(self, name)

    photos = sorted((root / "examples" / "blurred").glob("*.png"))
    prior = load_prior(None, preset="fast", device="cpu")
    deblur = Deblurrer(prior)
    package = str((root / "hidd").resolve())

    def calls(frame, event, arg):
        if event == "call" and executed is not None and frame.f_code.co_filename.startswith(package):
            executed.add((frame.f_code.co_filename, frame.f_code.co_firstlineno, frame.f_code.co_name))

    SamplerConfig.__getattribute__ = recording
    sys.setprofile(calls)
    threading.setprofile(calls)
    try:
        for path in photos:
            photo = torch.from_numpy(to_rgb(read_image(path).pixels)).permute(2, 0, 1)[None].float()
            deblur(photo)
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
        SamplerConfig.__getattribute__ = original
    return read


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1], help="a checkout of hidd")
    p.add_argument("--list", action="store_true", help="name the keys and constants")
    args = p.parse_args(argv)
    modules = default_path(args.root)
    fields = sampler_fields(args.root)
    executed: set[tuple[str, int, str]] = set()
    read = sorted(keys_read(args.root, executed))
    preset = yaml.safe_load((args.root / "configs" / "presets" / "fast.yaml").read_text())["sampler"]
    per_module = {name: constants(tree) for name, tree in sorted(modules.items())}
    total = sum(len(v) for v in per_module.values())
    print(f"{args.root}: {len(modules)} modules on the default path")
    print(f"sampler keys read on it: {len(read)} of {len(fields)}; set by configs/presets/fast.yaml: {len(preset)}")
    ran = executed_constants(args.root, modules, executed)
    print(f"numeric module constants on it: {total}; executed by the default: {len(ran)}")
    if args.list:
        print("keys:", " ".join(read))
        for name, names in per_module.items():
            if names:
                print(f"  {name}: {' '.join(n + ('' if f'{name}.{n}' in ran else ' (not executed)') for n in names)}")


if __name__ == "__main__":
    sys.exit(main())
