"""The All Tools tasks: a generated world to browse, task families and their checks, and training data made by
running the real tools."""

# Every module of task families registers them on import: importing the package loads them all, in this order
# (the order of the training file and of the eval's report).
from . import families as _families  # noqa: F401
from . import reading as _reading  # noqa: F401  (generator version 3)

# isort: split
from . import choosing as _choosing  # noqa: F401  (generator version 4)
from . import everyday as _everyday  # noqa: F401  (generator version 4)

# isort: split
from . import rehearsal as _rehearsal  # noqa: F401  (generator version 5)

# isort: split
from . import carrying as _carrying  # noqa: F401  (generator version 6)

# isort: split
from . import composing as _composing  # noqa: F401  (generator version 7)

# isort: split
from . import contrasting as _contrasting  # noqa: F401  (generator version 8)

# isort: split
from . import verbs as _verbs  # noqa: F401  (generator version 10)

# isort: split
from . import inventing as _inventing  # noqa: F401  (generator version 12)
