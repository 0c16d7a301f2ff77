"""`python -m langdeploy.cli`."""

from langdeploy.cli.main import main

main()
