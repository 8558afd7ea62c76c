"""`python -m beam_preprocess.synth --out DIR --scale 0.05 --seed 0`."""
from beam_preprocess.synth.cli import main

raise SystemExit(main())
