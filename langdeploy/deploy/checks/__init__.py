"""The offline checks behind `langdeploy deploy validate`, one module per kind of file.

tools.py finds and runs the validators (a missing one is a failed check naming the install);
files.py checks Dockerfiles, compose files, cloud-init user data, Caddyfiles and systemd units;
kubernetes.py builds every Kustomize overlay and validates the objects. deploy/validate.py
picks the checks for a rendered folder.
"""
