import sys

from tuning.task import main

sys.exit(main())
