"""`python -m trainer`: see trainer/task.py."""
import sys

from trainer.task import main

sys.exit(main())
