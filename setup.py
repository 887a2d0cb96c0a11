"""The package's data that lives outside lib/: the checkout's notebooks/ and params/ are the
one source, mapped into the wheel as lorastudy/notebooks and lorastudy/params rather than
copied into lib/ (where two copies would drift). pyproject.toml holds everything else."""

from setuptools import find_packages, setup

# Folders of the checkout that install as folders of the package (no __init__.py: data only).
DATA_PACKAGES = {"lorastudy.notebooks": ("notebooks", "*.ipynb"), "lorastudy.params": ("params", "*.yaml")}

setup(
    packages=[*find_packages("lib"), *DATA_PACKAGES],
    package_dir={"": "lib", **{name: folder for name, (folder, _) in DATA_PACKAGES.items()}},
    package_data={
        "lorastudy": ["report/templates/*/*"],
        **{name: [pattern] for name, (_, pattern) in DATA_PACKAGES.items()},
    },
)
