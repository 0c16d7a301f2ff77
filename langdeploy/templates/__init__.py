"""App scaffolds for `langdeploy new`: a registry of templates and the renderer that writes them.

A template is a stack of file layers (Jinja2 where a file ends in ``.j2``) inside a Python
package. Built-in templates register through ``register_templates``, the same hook a plugin
defines, so a third-party package ships templates the same way.
"""

from langdeploy.templates.registry import AppTemplate, template_registry
from langdeploy.templates.render import NewApp, new_app, render_app_files, validate_app_name

__all__ = [
    "AppTemplate",
    "NewApp",
    "new_app",
    "render_app_files",
    "template_registry",
    "validate_app_name",
]
