"""Runtime hook: point cuegui at the icons and stylesheet unpacked with the bundle.

cuegui looks in CUEGUI_RESOURCES first (cuegui.theme.resources_dir); inside a one-file bundle the
cuegui.resources files are unpacked under sys._MEIPASS, so name that directory unless the user
chose another.
"""

import os
import sys

os.environ.setdefault("CUEGUI_RESOURCES", os.path.join(sys._MEIPASS, "cuegui", "resources"))
