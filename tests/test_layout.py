"""The layout's rules, read from the code (ast): every family has one home and one
name, no module imports one of a higher layer, and no private name is used outside
its module."""
import ast
import os

import pytest

from conftest import REPO, config_names
from jaxgen import registry

# Layers, lowest first; a module may import only from its own layer or lower ones.
# Prefixes are matched longest first.
LAYERS = [
    ("core", ["jaxgen.errors", "jaxgen.xla_options", "jaxgen.config_file",
              "jaxgen.registry", "jaxgen.sharding", "jaxgen.precision",
              "jaxgen.prefetch", "jaxgen.viz", "jaxgen.workdir_lock",
              "jaxgen.checkpoint", "jaxgen.weights.torch_pickle", "jaxgen.weights"]),
    ("parts", ["jaxgen.data", "jaxgen.diffusion", "jaxgen.metrics", "jaxgen.models",
               "jaxgen.losses", "jaxgen.stages", "jaxgen.weights.clip",
               "jaxgen.weights.junyanz", "jaxgen.weights.ldm",
               "jaxgen.weights.stable_diffusion"]),
    ("shared family code", ["jaxgen.families.base", "jaxgen.families.adversarial",
                            "jaxgen.families.image_to_image",
                            "jaxgen.families.discrete_autoencoder", "jaxgen.evaluators"]),
    ("families", ["jaxgen.families", "jaxgen.weights.stylegan2",
                  "jaxgen.weights.dvae_openai"]),
    ("the loop", ["jaxgen.build", "jaxgen.loop_config", "jaxgen.train",
                  "jaxgen.benchmarking",
                  # evaluators that load a named stage (build.load_stage)
                  "jaxgen.evaluators.clip_stage", "jaxgen.evaluators.clip_score",
                  "jaxgen.evaluators.clip_r_precision"]),
    ("command lines", ["jaxgen.main", "jaxgen.score", "jaxgen.translate",
                       "jaxgen.train_mnist_classifier",
                       "jaxgen.families.pixelcnn.complete", "jaxgen.families.unclip.edit",
                       "jaxgen.data.prepare",
                       "jaxgen.evaluators.ceiling", "jaxgen.txt2img"]),
]
PREFIXES = sorted(((p, i) for i, (_, ps) in enumerate(LAYERS) for p in ps),
                  key=lambda x: -len(x[0]))


def layer(module: str) -> int:
  if module == "jaxgen":
    return 0
  for prefix, i in PREFIXES:
    if module == prefix or module.startswith(prefix + "."):
      return i
  raise AssertionError(f"{module} is in no layer of tests/test_layout.py: add it")


def python_files(*folders):
  for folder in folders:
    for root, _, files in os.walk(os.path.join(REPO, folder)):
      for f in files:
        if f.endswith(".py"):
          yield os.path.join(root, f)


def module_name(path: str) -> str:
  rel = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
  return rel[:-len(".__init__")] if rel.endswith(".__init__") else rel


def imports(tree, module: str):
  """(imported jaxgen module or module.name, line) pairs of a module's ast."""
  package = module if module.endswith("__init__") else module.rsplit(".", 1)[0]
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for a in node.names:
        if a.name.startswith("jaxgen"):
          yield a.name, node.lineno, ()
    elif isinstance(node, ast.ImportFrom) and node.module:
      base = node.module
      if node.level:
        base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                        + [node.module])
      if base.startswith("jaxgen"):
        yield base, node.lineno, tuple(a.name for a in node.names)


def test_no_module_imports_from_a_higher_layer():
  bad = []
  for path in python_files("jaxgen"):
    module = module_name(path)
    mine = layer(module)
    tree = ast.parse(open(path).read())
    for imported, line, names in imports(tree, module):
      targets = [imported] + [f"{imported}.{n}" for n in names
                              if os.path.isfile(os.path.join(
                                  REPO, *f"{imported}.{n}".split(".")) + ".py")]
      for target in targets:
        if layer(target) > mine:
          bad.append(f"{module}:{line} ({LAYERS[mine][0]}) imports {target} "
                     f"({LAYERS[layer(target)][0]})")
  assert not bad, "\n".join(bad)


def test_no_private_name_is_used_outside_its_module():
  """``module._name`` or ``from module import _name`` of a jaxgen module, anywhere
  in jaxgen/, tests/ or experiments/ (the module's own file excepted)."""
  bad = []
  for path in python_files("jaxgen", "tests", "experiments"):
    module = module_name(path)
    tree = ast.parse(open(path).read())
    aliases = {}  # local name -> jaxgen module
    for node in ast.walk(tree):
      if isinstance(node, ast.Import):
        for a in node.names:
          if a.name.startswith("jaxgen"):
            aliases[a.asname or a.name] = a.name
      elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jaxgen"):
        for a in node.names:
          if a.name.startswith("_") and not a.name.startswith("__"):
            bad.append(f"{module}:{node.lineno} imports {node.module}.{a.name}")
          aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    for node in ast.walk(tree):
      if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
          and node.value.id in aliases and node.attr.startswith("_")
          and not node.attr.startswith("__")
          and aliases[node.value.id] != module):
        bad.append(f"{module}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
  assert not bad, "\n".join(sorted(set(bad)))


@pytest.mark.parametrize("family", registry.family_names())
def test_a_family_has_one_home_and_one_name(family):
  """jaxgen/families/<family>/trainer.py names its Trainer; configs/<family>_*.py and
  tests/test_<family>*.py exist."""
  assert issubclass(registry.family_class(family), object)
  assert os.path.isfile(os.path.join(REPO, "jaxgen", "families", family, "__init__.py")), (
      "a family folder without __init__.py is no package: setup.py would not install it")
  assert any(n == family or n.startswith(f"{family}_") for n in config_names()), (
      f"no configs/{family}_<dataset>.py")
  tests = [f for f in os.listdir(os.path.join(REPO, "tests"))
           if f == f"test_{family}.py" or f.startswith(f"test_{family}_")]
  assert tests, f"no tests/test_{family}.py"
