"""`python -m lit_daa.toy_mdp`, the same as `lit-daa toy-mdp`."""

from lit_daa.toy_mdp.cli import main

raise SystemExit(main())
