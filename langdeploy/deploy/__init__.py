"""Deploy manifests: render them from the settings (render), check them offline (validate).

from langdeploy.deploy import render, validate_dir
out, files = render(settings, "k8s", Path("deploy/k8s"))
results = validate_dir(out)
"""

from __future__ import annotations

from langdeploy.deploy.render import DeployTarget, deploy_targets, render, render_files

__all__ = ["DeployTarget", "deploy_targets", "render", "render_files"]
