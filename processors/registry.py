"""The --task_name registry: built-in processors plus the user's own.

Names are case-insensitive. A user module loaded with load_processor_module registers
every DataProcessor subclass it defines under its class name lower-cased without a
trailing "processor" (EmotionProcessor -> "emotion"), and may also call
register_processor itself.

Shadowing: the last registration of a name wins, with a logged warning. In particular
a user's EmotionProcessor replaces the built-in "emotion" processor, because users of
the original run_classifier.py wrote their own processors for data sets that later
became built-ins here and expect their code to run. Explicit register_processor calls
inside a user module take precedence over the automatic name of the same class.
"""

import importlib
import importlib.util
import inspect
import os
import sys
from typing import Dict, List, Optional, Type

from absl import logging

from processors.base import DataProcessor
from processors.emotion import EmotionProcessor
from processors.glue import (ColaProcessor, MnliProcessor, MrpcProcessor,
                             Sst2Processor, XnliProcessor)

_REGISTRY: Dict[str, Type[DataProcessor]] = {}


def register_processor(name: str, cls: Optional[Type[DataProcessor]] = None):
  """Registers a DataProcessor subclass under a task name.

  Usable directly, `register_processor("emotion", EmotionProcessor)`, or as a class
  decorator, `@register_processor("emotion")`.

  Args:
    name: task name as given to --task_name; matched case-insensitively.
    cls: the DataProcessor subclass; omit to get a decorator.

  Returns:
    cls (or, when cls is omitted, a decorator that registers and returns its class).

  Raises:
    TypeError: cls is not a DataProcessor subclass.
    ValueError: name is empty.
  """
  if cls is None:
    def decorator(klass):
      return register_processor(name, klass)
    return decorator
  if not (inspect.isclass(cls) and issubclass(cls, DataProcessor)):
    raise TypeError(f"register_processor({name!r}, ...) needs a subclass of "
                    f"processors.DataProcessor, got {cls!r}")
  key = str(name).strip().lower()
  if not key:
    raise ValueError("register_processor needs a non-empty task name")
  previous = _REGISTRY.get(key)
  if previous is not None and previous is not cls:
    logging.warning("Task name %r: %s.%s replaces %s.%s", key, cls.__module__,
                    cls.__qualname__, previous.__module__, previous.__qualname__)
  _REGISTRY[key] = cls
  return cls


def known_tasks() -> List[str]:
  """Returns the registered task names, sorted."""
  return sorted(_REGISTRY)


def get_processor(task_name: str) -> DataProcessor:
  """Returns a new instance of the processor registered for `task_name`.

  Args:
    task_name: the --task_name value, any case.

  Returns:
    a DataProcessor instance.

  Raises:
    ValueError: the name is not registered; the message lists the known names.
  """
  key = str(task_name).strip().lower()
  if key not in _REGISTRY:
    raise ValueError(f"Task not found: {task_name!r}. Known tasks: "
                     f"{', '.join(known_tasks())}. Add your own with "
                     f"processors.register_processor or a processor module.")
  return _REGISTRY[key]()


def default_task_name(cls: Type[DataProcessor]) -> str:
  """The automatic task name of a class: lower-cased, trailing "processor" removed.

  Args:
    cls: a DataProcessor subclass.

  Returns:
    e.g. "emotion" for EmotionProcessor.
  """
  name = cls.__name__.lower()
  if name.endswith("processor"):
    name = name[:-len("processor")]
  return name


def load_processor_module(path_or_module_name: str):
  """Imports a user's processor module and registers the processors it defines.

  Args:
    path_or_module_name: a file path (e.g. "my_processors.py") or an importable
      dotted module name (e.g. "mypkg.processors").

  Returns:
    the imported module.

  Raises:
    ValueError: the file does not exist or the module cannot be found.
  """
  target = str(path_or_module_name)
  _alias_main_script()
  if target.endswith(".py") or os.sep in target or os.path.exists(target):
    module = _import_file(target)
  else:
    try:
      module = importlib.import_module(target)
    except ModuleNotFoundError as e:
      # Only the module itself (or its package) missing is our error to explain; a
      # missing import inside the user's module propagates as is.
      if e.name is None or not (target == e.name or target.startswith(e.name + ".")):
        raise
      raise ValueError(f"processor module {target!r} not found ({e}); give a "
                       f"file path or an importable module name") from None
  registered = set(_REGISTRY.values())
  for _, cls in inspect.getmembers(module, inspect.isclass):
    if (issubclass(cls, DataProcessor) and cls.__module__ == module.__name__
        and not cls.__name__.startswith("_") and cls not in registered):
      name = default_task_name(cls)
      if name:
        register_processor(name, cls)
  return module


def _alias_main_script():
  """Lets a user module `import run_classifier` while run_classifier.py is running.

  Processor files written for the original often start with
  `from run_classifier import DataProcessor, InputExample`. When run_classifier.py
  is the running script it is the module __main__, and importing it again by name
  would execute it a second time (and define its absl flags twice). Registering the
  running script under its own name makes that import return the running module.
  """
  main = sys.modules.get("__main__")
  main_file = getattr(main, "__file__", None)
  if not main_file:
    return
  name = os.path.splitext(os.path.basename(main_file))[0]
  if name in ("run_classifier", "run_squad") and name not in sys.modules:
    sys.modules[name] = main


def _import_file(path):
  path = os.path.abspath(path)
  if not os.path.isfile(path):
    raise ValueError(f"processor module file not found: {path}")
  name = os.path.splitext(os.path.basename(path))[0]
  existing = sys.modules.get(name)
  if existing is not None:
    if os.path.abspath(getattr(existing, "__file__", "") or "") == path:
      return existing
    # Another module already owns that name (e.g. a user file called
    # "tokenization.py"); load under a private name rather than replace it.
    name = "_user_processors_" + name
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  # Registered before execution so dataclasses/pickle inside the module can find it.
  sys.modules[name] = module
  try:
    spec.loader.exec_module(module)
  except BaseException:
    del sys.modules[name]
    raise
  return module


def _register_builtins():
  register_processor("emotion", EmotionProcessor)
  register_processor("mrpc", MrpcProcessor)
  register_processor("sst2", Sst2Processor)
  register_processor("sst-2", Sst2Processor)
  register_processor("cola", ColaProcessor)
  register_processor("mnli", MnliProcessor)
  register_processor("xnli", XnliProcessor)


_register_builtins()
