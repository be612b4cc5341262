"""Per-package settings and patches as units: loading, validation (every problem with its
file and line), layering, defaults, variants, environment expansion, rebuild numbers, and
which patches apply in which order."""

from __future__ import annotations

import difflib
import hashlib
import re
import textwrap
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from bootstrapper.errors import BootstrapError
from bootstrapper.patches import PatchError, apply_patches, find_patches, patched_packages
from bootstrapper.settings import (
    PackageSettings,
    RequirementEdits,
    Settings,
    SettingsError,
    SourceSpec,
    expand,
)

# -- helpers -------------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def settings_file(layer: Path, name: str, text: str) -> Path:
    return write(layer / "settings" / f"{name}.yaml", text)


def problems_of(*layers: Path) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        Settings(list(layers))
    return caught.value.problems


def name(text: str) -> NormalizedName:
    return canonicalize_name(text)


# -- a valid file, every key --------------------------------------------------------


def test_every_key_is_loaded_as_typed_values(tmp_path: Path) -> None:
    settings_file(
        tmp_path,
        "pkg",
        """
        env:
          CFLAGS: "-O2"
          NUMBER: 3
        config-settings:
          --build-option: ["--plat", "x"]
          editable-mode: strict
        build-requires:
          remove: [cmake, Ninja_Build]
          add: ["setuptools>=60"]
        requires:
          remove: [triton]
          add: ['numpy>=1.20; python_version >= "3.9"']
        changelog:
          "1.4": [fix the build, rebuilt against new openssl]
          1.10: [unquoted version keeps its text]
        rebuild-scheme: post
        prebuilt: false
        source:
          git: https://example.invalid/pkg.git
          ref: v${version}
        patch-fuzz: 1
        variants:
          gpu:
            env: {CUDA: "1"}
            patch-fuzz: 2
        """,
    )
    settings = Settings([tmp_path])
    assert settings.packages == ["pkg"]
    assert settings.variants() == {"gpu"}
    pkg = settings.for_package(name("pkg"))
    assert pkg.env == {"CFLAGS": "-O2", "NUMBER": "3"}
    assert pkg.config_settings == {"--build-option": ["--plat", "x"], "editable-mode": "strict"}
    assert pkg.build_requires.remove == ("cmake", "ninja-build")
    assert [str(r) for r in pkg.build_requires.add] == ["setuptools>=60"]
    assert pkg.requires.remove == ("triton",)
    assert [str(r) for r in pkg.requires.add] == ['numpy>=1.20; python_version >= "3.9"']
    assert pkg.changelog == {
        Version("1.4"): ("fix the build", "rebuilt against new openssl"),
        Version("1.10"): ("unquoted version keeps its text",),
    }
    assert pkg.rebuild_scheme == "post"
    assert pkg.prebuilt is False
    assert pkg.source == SourceSpec(git="https://example.invalid/pkg.git", ref="v${version}")
    assert pkg.patch_fuzz == 1
    assert pkg.to_json(Version("1.4"))["patch-fuzz"] == 1
    assert settings.for_package(name("pkg"), "gpu").patch_fuzz == 2
    assert pkg.files == (str(tmp_path / "settings" / "pkg.yaml"),)


def test_empty_file_and_missing_layers_give_plain_settings(tmp_path: Path) -> None:
    settings_file(tmp_path, "empty", "")
    settings = Settings([tmp_path, tmp_path / "does-not-exist"])
    assert settings.layers == [tmp_path]
    assert settings.packages == ["empty"]
    pkg = settings.for_package(name("empty"))
    assert pkg.env == {} and not pkg.requires and not pkg.build_requires
    assert pkg.rebuild_scheme == "build-tag" and pkg.prebuilt is False and pkg.source is None
    assert pkg.patch_fuzz == 0  # strict: a patch applies as written or not at all
    assert "patch-fuzz" not in pkg.to_json(Version("1"))  # records made before it still match
    other = settings.for_package(name("not-configured"))
    assert other == PackageSettings()


# -- validation: each problem with file and line ---------------------------------------

PROBLEMS = [
    pytest.param("colour: blue\n", 1, "unknown key 'colour'", id="unknown-key"),
    pytest.param("env: [A, B]\n", 1, "env must be a mapping", id="env-not-mapping"),
    pytest.param("env:\n  A: [1, 2]\n", 2, "env A must be a string", id="env-value-list"),
    pytest.param("env:\n  A:\n", 2, "env A must be a string", id="env-value-null"),
    pytest.param(
        "config-settings: 3\n", 1, "config-settings must be a mapping", id="config-not-mapping"
    ),
    pytest.param(
        "config-settings:\n  opt: [a, [b]]\n", 2, "must be a string", id="config-nested-list"
    ),
    pytest.param("prebuilt: 'yes'\n", 1, "prebuilt must be true or false", id="prebuilt-str"),
    pytest.param("prebuilt: 1\n", 1, "prebuilt must be true or false", id="prebuilt-int"),
    pytest.param("requires: [numpy]\n", 1, "requires must be a mapping", id="requires-not-mapping"),
    pytest.param(
        "requires:\n  remove: numpy\n",
        2,
        "requires.remove must be a list of strings",
        id="remove-not-list",
    ),
    pytest.param(
        "requires:\n  drop: [numpy]\n", 2, "unknown key 'drop' in requires", id="edit-unknown-key"
    ),
    pytest.param(
        "build-requires:\n  add:\n    - cmake\n    - 'foo >>> 1'\n",
        4,
        "build-requires.add: malformed requirement 'foo >>> 1'",
        id="bad-requirement",
    ),
    pytest.param(
        "changelog:\n  '1.0': [a]\n  not-a-version: [b]\n",
        3,
        "changelog: invalid version 'not-a-version'",
        id="bad-changelog-version",
    ),
    pytest.param(
        "changelog:\n  '1.0': just one reason\n",
        2,
        "changelog 1.0 must be a list of strings",
        id="changelog-reasons-not-list",
    ),
    pytest.param(
        "rebuild-scheme: tag\n",
        1,
        "rebuild-scheme must be one of build-tag, post, local",
        id="bad-rebuild-scheme",
    ),
    pytest.param(
        "rebuild-scheme: [post]\n", 1, "rebuild-scheme must be a string", id="scheme-not-string"
    ),
    pytest.param(
        "source:\n  url: https://x.invalid/a.tar.gz\n  git: https://x.invalid/a.git\n",
        2,
        "source needs exactly one of url or git",
        id="source-url-and-git",
    ),
    pytest.param(
        "patch-fuzz: -1\n",
        1,
        "patch-fuzz must be a whole number, 0 or more (got '-1')",
        id="patch-fuzz-negative",
    ),
    pytest.param(
        "env: {}\npatch-fuzz: two\n",
        2,
        "patch-fuzz must be a whole number, 0 or more (got 'two')",
        id="patch-fuzz-word",
    ),
    pytest.param(
        "patch-fuzz: true\n", 1, "patch-fuzz must be a whole number", id="patch-fuzz-bool"
    ),
    pytest.param(
        "patch-fuzz: 1.5\n", 1, "patch-fuzz must be a whole number", id="patch-fuzz-float"
    ),
    pytest.param(
        "variants:\n  gpu:\n    patch-fuzz: [1]\n",
        3,
        "patch-fuzz must be a whole number, 0 or more",
        id="patch-fuzz-in-variant",
    ),
    pytest.param(
        "source:\n  ref: main\n", 2, "source needs exactly one of url or git", id="source-neither"
    ),
    pytest.param(
        "source:\n  url: https://x.invalid/a.tar.gz\n  branch: main\n",
        3,
        "unknown key 'branch' in source",
        id="source-unknown-key",
    ),
    pytest.param(
        "variants:\n  gpu:\n    env: {A: '1'}\n    colour: blue\n",
        4,
        "unknown key 'colour'",
        id="variant-unknown-key",
    ),
    pytest.param(
        "variants:\n  gpu:\n    variants: {}\n", 3, "unknown key 'variants'", id="nested-variants"
    ),
    pytest.param("- env\n- requires\n", 1, "the settings must be a mapping", id="not-a-mapping"),
    pytest.param("env: [unclosed\n", 2, "invalid YAML", id="bad-yaml"),
    pytest.param("env:\n  A: 'x'\n B: y\n", 3, "invalid YAML", id="bad-indentation"),
]


@pytest.mark.parametrize(("text", "line", "message"), PROBLEMS)
def test_each_problem_is_reported_with_file_and_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = settings_file(tmp_path, "pkg", text)
    problems = problems_of(tmp_path)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{path}:{line}: "), problems
    assert message in problems[0]


def test_every_problem_of_every_file_is_reported_together(tmp_path: Path) -> None:
    first = settings_file(
        tmp_path,
        "alpha",
        """
        env:
          GOOD: "1"
        colour: blue
        rebuild-scheme: sometimes
        requires:
          add: ["ok", "not ok ((("]
        """,
    )
    second = settings_file(tmp_path, "beta", "env: [unclosed\n")
    defaults = write(tmp_path / "settings.yaml", "prebuilt: maybe\n")
    misnamed = settings_file(tmp_path, "Gamma_Pkg", "env: {}\n")
    stray = write(tmp_path / "settings" / "notes.txt", "not settings\n")
    with pytest.raises(SettingsError) as caught:
        Settings([tmp_path])
    error = caught.value
    problems = error.problems
    assert len(problems) == 7, problems
    expected = [
        (f"{first}:3: ", "unknown key 'colour'"),
        (f"{first}:4: ", "rebuild-scheme must be one of"),
        (f"{first}:6: ", "malformed requirement 'not ok ((('"),
        (f"{second}:2: ", "invalid YAML"),
        (f"{defaults}:1: ", "prebuilt must be true or false"),
        (f"{misnamed}: ", "gamma-pkg.yaml"),
        (f"{stray}: ", "not a .yaml file"),
    ]
    for prefix, message in expected:
        assert any(p.startswith(prefix) and message in p for p in problems), (prefix, problems)
    # One error for all of them, and its rendering lists every one.
    assert "problems in the per-package settings" in error.message
    rendered = error.render()
    for problem in problems:
        assert problem.splitlines()[0] in rendered


def test_a_file_not_named_after_the_normalized_name(tmp_path: Path) -> None:
    path = settings_file(tmp_path, "Foo_Bar", "env: {}\n")
    problems = problems_of(tmp_path)
    assert problems == [f"{path}: name the file after the normalized project name: foo-bar.yaml"]


def test_a_non_yaml_file_in_the_settings_dir(tmp_path: Path) -> None:
    path = write(tmp_path / "settings" / "pkg.json", "{}")
    problems = problems_of(tmp_path)
    assert len(problems) == 1 and problems[0].startswith(f"{path}: ")
    assert "not a .yaml file" in problems[0]


def test_yml_suffix_is_accepted(tmp_path: Path) -> None:
    write(tmp_path / "settings" / "pkg.yml", "env: {A: b}\n")
    assert Settings([tmp_path]).for_package(name("pkg")).env == {"A": "b"}


# -- layers and defaults -------------------------------------------------------------


def test_user_file_wins_over_a_recipe_file_of_the_same_name(tmp_path: Path) -> None:
    user, recipes = tmp_path / "user", tmp_path / "recipes"
    settings_file(user, "torch", "env:\n  USE_CUDA: '1'\n")
    settings_file(
        recipes,
        "torch",
        "env:\n  USE_CUDA: '0'\n  BUILD_TEST: '0'\nbuild-requires:\n  remove: [cmake]\n",
    )
    settings_file(recipes, "lxml", "env:\n  STATIC_DEPS: 'false'\n")
    settings = Settings([user, recipes])
    assert settings.packages == ["lxml", "torch"]
    torch = settings.for_package(name("torch"))
    # The whole file wins: nothing of the recipe's torch.yaml leaks in.
    assert torch.env == {"USE_CUDA": "1"}
    assert not torch.build_requires
    assert torch.files == (str(user / "settings" / "torch.yaml"),)
    # A recipe the user does not override still applies.
    lxml = settings.for_package(name("lxml"))
    assert lxml.env == {"STATIC_DEPS": "false"}
    assert lxml.files == (str(recipes / "settings" / "lxml.yaml"),)


def test_the_first_layers_defaults_file_wins(tmp_path: Path) -> None:
    user, recipes = tmp_path / "user", tmp_path / "recipes"
    write(user / "settings.yaml", "env: {FROM: user}\n")
    write(recipes / "settings.yaml", "env: {FROM: recipes, ONLY_RECIPES: '1'}\n")
    pkg = Settings([user, recipes]).for_package(name("anything"))
    assert pkg.env == {"FROM": "user"}
    assert pkg.files == (str(user / "settings.yaml"),)


def test_defaults_are_merged_under_the_package_file(tmp_path: Path) -> None:
    defaults = write(
        tmp_path / "settings.yaml",
        """
        env: {A: default-a, B: default-b}
        config-settings: {opt: default}
        rebuild-scheme: post
        requires: {remove: [from-defaults]}
        """,
    )
    package = settings_file(
        tmp_path,
        "pkg",
        """
        env: {B: package-b, C: package-c}
        config-settings: {other: package}
        requires: {add: [extra]}
        changelog: {"1.0": [one]}
        """,
    )
    pkg = Settings([tmp_path]).for_package(name("pkg"))
    assert pkg.env == {"A": "default-a", "B": "package-b", "C": "package-c"}
    assert pkg.config_settings == {"opt": "default", "other": "package"}
    assert pkg.rebuild_scheme == "post"
    # Keys other than env and config-settings are replaced whole.
    assert pkg.requires == RequirementEdits(remove=(), add=(Requirement("extra"),))
    assert pkg.rebuild(Version("1.0")) == (1, ("one",))
    assert pkg.files == (str(defaults), str(package))


# -- variants --------------------------------------------------------------------------


def test_variant_merges_env_variable_by_variable_and_replaces_other_keys(
    tmp_path: Path,
) -> None:
    settings_file(
        tmp_path,
        "torch",
        """
        env:
          USE_CUDA: "0"
          MAX_JOBS: "2"
        config-settings: {a: base}
        requires:
          remove: [triton]
        rebuild-scheme: build-tag
        variants:
          cuda:
            env:
              USE_CUDA: "1"
              ARCH: "8.0"
            config-settings: {b: cuda}
            requires: {}
            rebuild-scheme: local
          rocm:
            prebuilt: true
        """,
    )
    settings = Settings([tmp_path])
    assert settings.variants() == {"cuda", "rocm"}
    base = settings.for_package(name("torch"))
    assert base.env == {"USE_CUDA": "0", "MAX_JOBS": "2"}
    assert base.requires.remove == ("triton",)
    cuda = settings.for_package(name("torch"), "cuda")
    assert cuda.env == {"USE_CUDA": "1", "MAX_JOBS": "2", "ARCH": "8.0"}
    assert cuda.config_settings == {"a": "base", "b": "cuda"}
    assert not cuda.requires
    assert cuda.rebuild_scheme == "local"
    rocm = settings.for_package(name("torch"), "rocm")
    assert rocm.prebuilt is True
    assert rocm.env == base.env and rocm.requires == base.requires
    # A variant this package does not define leaves it as it is.
    assert settings.for_package(name("torch"), "other") == base


def test_variants_of_the_defaults_file_apply_to_every_package(tmp_path: Path) -> None:
    write(tmp_path / "settings.yaml", "variants:\n  debug:\n    env: {CFLAGS: '-g'}\n")
    settings_file(tmp_path, "pkg", "env: {OWN: '1'}\n")
    settings = Settings([tmp_path])
    assert settings.variants() == {"debug"}
    assert settings.for_package(name("pkg"), "debug").env == {"CFLAGS": "-g", "OWN": "1"}
    assert settings.for_package(name("other"), "debug").env == {"CFLAGS": "-g"}
    assert settings.for_package(name("pkg")).env == {"OWN": "1"}


# -- environment expansion -------------------------------------------------------------

EXPANSIONS = [
    ("${A}", {"A": "x"}, "x"),
    ("${A:-fallback}", {}, "fallback"),
    ("${A:-fallback}", {"A": "set"}, "set"),
    ("${A:-}", {}, ""),
    ("pre-${A}-${B:-b}-post", {"A": "a"}, "pre-a-b-post"),
    ("$A and ${A", {"A": "x"}, "$A and ${A"),
    ("${A:-with spaces and = signs}", {}, "with spaces and = signs"),
    ("${A}${A}", {"A": "ab"}, "abab"),
]


@pytest.mark.parametrize(("value", "variables", "expected"), EXPANSIONS)
def test_expand(value: str, variables: dict[str, str], expected: str) -> None:
    assert expand(value, variables, "KEY") == expected


def test_expand_unset_without_default_is_an_error_naming_the_variable() -> None:
    with pytest.raises(BootstrapError) as caught:
        expand("${NOT_SET_ANYWHERE}", {}, "MY_KEY")
    assert "NOT_SET_ANYWHERE" in caught.value.message
    assert "MY_KEY" in caught.value.message


def test_expand_default_also_replaces_an_empty_variable() -> None:
    assert expand("${A:-fallback}", {"A": ""}, "KEY") == "fallback"


def test_expanded_env_uses_the_run_environment_and_the_version(tmp_path: Path) -> None:
    settings_file(
        tmp_path,
        "pkg",
        """
        env:
          BUILD_VERSION: "${version}"
          TAGGED: "v${version}-${FLAVOUR:-cpu}"
          FROM_RUN: "${RUN_VAR}"
          LITERAL: plain
        """,
    )
    pkg = Settings([tmp_path]).for_package(name("pkg"))
    env = pkg.expanded_env(Version("2.5.1"), {"RUN_VAR": "from-run"})
    assert env == {
        "BUILD_VERSION": "2.5.1",
        "TAGGED": "v2.5.1-cpu",
        "FROM_RUN": "from-run",
        "LITERAL": "plain",
    }
    assert pkg.expanded_env(Version("2.5.1"), {"RUN_VAR": "r", "FLAVOUR": "gpu"})["TAGGED"] == (
        "v2.5.1-gpu"
    )
    with pytest.raises(BootstrapError, match=r"FROM_RUN.*RUN_VAR|RUN_VAR.*FROM_RUN"):
        pkg.expanded_env(Version("2.5.1"), {})


# -- rebuild numbers -----------------------------------------------------------------


def test_rebuild_number_is_the_number_of_changelog_entries(tmp_path: Path) -> None:
    settings_file(
        tmp_path,
        "pkg",
        """
        changelog:
          "1.4": [first fix, second fix]
          "1.5": [only one]
        rebuild-scheme: post
        """,
    )
    pkg = Settings([tmp_path]).for_package(name("pkg"))
    assert pkg.rebuild(Version("1.4")) == (2, ("first fix", "second fix"))
    assert pkg.rebuild(Version("1.4.0")) == (2, ("first fix", "second fix"))
    assert pkg.rebuild(Version("1.5")) == (1, ("only one",))
    assert pkg.rebuild(Version("1.6")) == (0, ())
    edit = pkg.wheel_edit(Version("1.4"))
    assert (edit.rebuild, edit.scheme) == (2, "post")
    assert edit.new_version(Version("1.4")) == Version("1.4.post2")
    assert pkg.wheel_edit(Version("1.6")).is_empty
    record = pkg.to_json(Version("1.4"))
    assert record["rebuild"] == 2
    assert record["rebuild-reasons"] == ["first fix", "second fix"]
    assert record["rebuild-scheme"] == "post"


def test_requires_edits_apply_by_normalized_name() -> None:
    edits = RequirementEdits(remove=(name("Foo_Bar"),), add=(Requirement("new>=1"),))
    result = edits.apply([Requirement("foo.bar>=2"), Requirement("keep"), Requirement("FOO-BAR")])
    assert [str(r) for r in result] == ["keep", "new>=1"]
    assert edits.to_json() == {"remove": ["foo-bar"], "add": ["new>=1"]}
    assert not RequirementEdits()


# -- patches: which apply, in which order ----------------------------------------------


def patch_file(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text or f"# {path.name}\n")
    return path


def test_find_patches_orders_every_version_version_and_variant_patches_by_name(
    tmp_path: Path,
) -> None:
    layer = tmp_path / "patches"
    pkg = layer / "My_Pkg"  # found by its normalized name
    every_b = patch_file(pkg / "20-every.patch")
    every_a = patch_file(pkg / "05-every.patch")
    version = patch_file(pkg / "1.0" / "10-version.patch")
    variant = patch_file(pkg / "variants" / "gpu" / "15-variant.patch")
    patch_file(pkg / "2.0" / "01-other-version.patch")
    patch_file(pkg / "variants" / "cpu" / "01-other-variant.patch")
    patch_file(pkg / "notes.txt")
    patch_file(pkg / "not-a-version" / "01-ignored.patch")
    patch_file(layer / "other" / "01-other-package.patch")

    found = find_patches([layer], name("my-pkg"), Version("1.0.0"), None)
    assert [p.path for p in found] == [every_a, version, every_b]
    with_variant = find_patches([layer], name("my-pkg"), Version("1.0"), "gpu")
    assert [p.path for p in with_variant] == [every_a, version, variant, every_b]
    assert [p.path for p in find_patches([layer], name("my-pkg"), Version("3"), None)] == [
        every_a,
        every_b,
    ]
    assert find_patches([layer], name("unpatched"), Version("1.0"), None) == []
    for patch in with_variant:
        assert patch.sha256 == hashlib.sha256(patch.path.read_bytes()).hexdigest()
        assert patch.to_json() == {"file": patch.path.name, "sha256": patch.sha256}
    assert patched_packages([layer, tmp_path / "missing"]) == {"my-pkg", "other"}


def test_find_patches_sees_a_package_directory_added_since_it_last_looked(
    tmp_path: Path,
) -> None:
    """Layers' listings are kept between calls, until the layer changes."""
    layer = tmp_path / "patches"
    first = patch_file(layer / "one" / "01-fix.patch")
    assert [p.path for p in find_patches([layer], name("one"), Version("1"), None)] == [first]
    assert find_patches([layer], name("two"), Version("1"), None) == []
    added = patch_file(layer / "Two" / "01-fix.patch")
    assert [p.path for p in find_patches([layer], name("two"), Version("1"), None)] == [added]
    # A new version directory inside a known package directory is seen too.
    version = patch_file(layer / "one" / "1" / "02-version.patch")
    assert [p.path for p in find_patches([layer], name("one"), Version("1"), None)] == [
        first,
        version,
    ]


def test_find_patches_the_first_layer_wins_by_file_name(tmp_path: Path) -> None:
    user, recipes = tmp_path / "user", tmp_path / "recipes"
    mine = patch_file(user / "torch" / "01-fix.patch", "mine\n")
    theirs_same_name = patch_file(recipes / "torch" / "01-fix.patch", "theirs\n")
    theirs_versioned = patch_file(recipes / "torch" / "2.5.1" / "01-fix.patch", "theirs v\n")
    theirs_other = patch_file(recipes / "torch" / "02-more.patch")
    mine_later = patch_file(user / "torch" / "2.5.1" / "03-mine.patch")

    found = find_patches([user, recipes], name("torch"), Version("2.5.1"), None)
    assert [p.path for p in found] == [mine, theirs_other, mine_later]
    assert theirs_same_name not in [p.path for p in found]
    assert theirs_versioned not in [p.path for p in found]
    # With the layers the other way round, the recipes' file of that name wins.
    reverse = find_patches([recipes, user], name("torch"), Version("2.5.1"), None)
    assert reverse[0].path in (theirs_same_name, theirs_versioned)
    assert [p.path.name for p in reverse] == ["01-fix.patch", "02-more.patch", "03-mine.patch"]


def unified_diff(path: str, before: str, after: str) -> str:
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            f"a/{path}",
            f"b/{path}",
        )
    )


def test_apply_patches_in_order_and_a_failing_hunk_is_named(tmp_path: Path) -> None:
    source = tmp_path / "src"
    original = "".join(f"line {i}\n" for i in range(1, 21))
    write(source / "data.txt", original)
    step1 = original.replace("line 3\n", "line three\n")
    step2 = step1.replace("line three\n", "line THREE\n")
    first = patch_file(tmp_path / "p" / "01.patch", unified_diff("data.txt", original, step1))
    second = patch_file(tmp_path / "p" / "02.patch", unified_diff("data.txt", step1, step2))
    patches = find_patches([tmp_path], name("p"), Version("1"), None)
    assert [p.path for p in patches] == [first, second]
    output = apply_patches(source, patches).log
    assert (source / "data.txt").read_text() == step2
    assert str(first) in output and str(second) in output

    bad = patch_file(
        tmp_path / "q" / "01-stale.patch",
        unified_diff("data.txt", original, original.replace("line 15\n", "line fifteen\n")),
    )
    (source / "data.txt").write_text(original.replace("line 15\n", "changed upstream\n"))
    with pytest.raises(PatchError) as caught:
        apply_patches(source, find_patches([tmp_path], name("q"), Version("1"), None))
    assert str(bad) in caught.value.message
    assert caught.value.details is not None
    assert re.search(r"Hunk #1 FAILED", caught.value.details), caught.value.details
