"""The web app in production (infra/terraform/modules/web and the edge's URL map): routing,
security headers and caching, held to what the local gateway serves (local/webapp.py).

The configuration is parsed with python-hcl2; the module's locals (each file's
Content-Type and Cache-Control, the CSP, config.json) are also evaluated by Terraform
itself (`terraform_tool.py outputs`, no provider needed) over a sample build."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from local import auth_emulator
from local.gateway import load_routes, render
from local.paths import OPENAPI
from local.webapp import (
    CONTENT_TYPES,
    IMMUTABLE,
    PRODUCTION_IDENTITY_ORIGINS,
    REFERRER_POLICY,
    REVALIDATE,
    WebApp,
    content_security_policy,
    is_app_path,
)
from tests.unit.test_terraform import locals_, module_calls, module_dir, one, resources, variables
from tests.unit.test_terraform_tool import terraform

WEB = module_dir("web")
EDGE = module_dir("edge")
API_KEY = "AIzaSyA1234567890abcdefghijklmnopqrstuv"


def test_the_url_map_sends_the_app_paths_to_the_bucket_and_the_rest_to_the_gateway() -> None:
    url_map = resources(EDGE, "google_compute_url_map")["https"]
    gateway = "${google_compute_backend_service.gateway.id}"
    assert url_map["default_service"] == gateway
    host_rule = one(url_map["host_rule"])
    assert host_rule == {"hosts": ["*"], "path_matcher": "clinic"}
    matcher = one(url_map["path_matcher"])
    assert matcher["name"] == "clinic" and matcher["default_service"] == gateway
    rule = one(matcher["path_rule"])
    assert rule == {"paths": "${var.web_paths}", "service": "${var.web_backend_bucket_id}"}
    edge = module_calls()["edge"]
    assert edge["web_paths"] == "${module.web.app_paths}"
    assert edge["web_backend_bucket_id"] == "${module.web.backend_bucket_id}"
    assert locals_(WEB)["app_paths"] == ["/", "/index.html", "/config.json", "/assets/*"]


def test_the_app_paths_are_the_local_gateways_and_no_api_route_is_among_them() -> None:
    for path in locals_(WEB)["app_paths"]:
        assert is_app_path(path.replace("*", "index-abc123.js"))
    values = dict.fromkeys(["slots_url", "book_url", "cancel_url", "jwt_issuer", "jwks_uri", "jwt_audience"], "x")
    for route in load_routes(render(OPENAPI.read_text(), values)):
        sample = route.template.replace("{", "").replace("}", "")
        assert not is_app_path(sample), route.template
        assert not sample.startswith("/assets") and sample not in ("/", "/index.html", "/config.json")


def test_the_backend_bucket_adds_the_security_headers_and_caches_by_the_objects_headers() -> None:
    backend = resources(WEB, "google_compute_backend_bucket")["web"]
    assert backend["bucket_name"] == "${google_storage_bucket.web.name}"
    assert backend["custom_response_headers"] == "${local.security_headers}"
    assert backend["edge_security_policy"] == "${google_compute_security_policy.web_edge.id}"
    assert backend["enable_cdn"] is True and backend["compression_mode"] == "AUTOMATIC"
    cdn = one(backend["cdn_policy"])
    # Each object's own Cache-Control decides: no TTL here may override it.
    assert cdn["cache_mode"] == "USE_ORIGIN_HEADERS"
    assert not {"default_ttl", "max_ttl", "client_ttl"} & set(cdn)


def test_cloud_armor_guards_both_backends() -> None:
    policy = resources(WEB, "google_compute_security_policy")["web_edge"]
    assert policy["type"] == "CLOUD_ARMOR_EDGE"
    default = [r for r in policy["rule"] if r["priority"] == 2147483647]
    assert one(default)["action"] == "allow"
    assert resources(EDGE, "google_compute_backend_service")["gateway"]["security_policy"] == (
        "${google_compute_security_policy.edge.id}"
    )


def test_the_bucket_is_versioned_uniform_and_served_from_the_root() -> None:
    bucket = resources(WEB, "google_storage_bucket")["web"]
    assert bucket["uniform_bucket_level_access"] is True
    assert one(bucket["versioning"])["enabled"] is True
    assert one(bucket["website"])["main_page_suffix"] == "index.html"
    rule = one(bucket["lifecycle_rule"])
    assert one(rule["action"])["type"] == "Delete"
    assert one(rule["condition"])["days_since_noncurrent_time"] == "${var.noncurrent_version_days}"
    assert module_calls()["web"]["dist_dir"] == '${abspath("${path.root}/../../web/dist")}'


def test_objects_come_from_the_build_and_config_from_variables() -> None:
    files = resources(WEB, "google_storage_bucket_object")
    assert files["file"]["for_each"] == "${local.objects}"
    assert files["file"]["source"] == "${var.dist_dir}/${each.key}"
    assert files["file"]["content_type"] == "${each.value.content_type}"
    assert files["file"]["cache_control"] == "${each.value.cache_control}"
    config = files["config"]
    assert config["name"] == "config.json" and config["content"] == "${jsonencode(local.config)}"
    assert config["content_type"] == "application/json" and config["cache_control"] == "${local.revalidate}"
    assert module_calls()["web"]["web_api_key"] == "${var.web_api_key}"
    assert "web_api_key" in variables(module_dir(None)) and "default" not in variables(module_dir(None))["web_api_key"]


# -- evaluated by Terraform -----------------------------------------------------------------------


def block(path: Path, kind: str, name: str | None = None) -> str:
    head = f'{kind} "{name}"' if name else kind
    found = re.search(rf"^{re.escape(head)} \{{\n.*?^\}}\n", path.read_text(), re.S | re.M)
    assert found, f"no {head} in {path}"
    return found.group(0)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The web module's locals, as Terraform computes them for a sample build."""
    work = tmp_path_factory.mktemp("web-locals")
    dist = work / "dist"
    (dist / "assets").mkdir(parents=True)
    for name in (
        "index.html",
        "config.json",
        ".built",
        "assets/.cache",
        "favicon.ico",
        "robots.txt",
        "LICENSE",
        "assets/index-3f9a1c.js",
        "assets/index-77aa00.css",
        "assets/Inter-4b5c6d.woff2",
        "assets/index-3f9a1c.js.map",
        "assets/logo-1b2c3d.SVG",
    ):
        (dist / name).write_text("x")
    config = work / "config"
    config.mkdir()
    main = WEB / "main.tf"
    variables_tf = WEB / "variables.tf"
    outputs = "".join(
        f'output "{name}" {{\n  value = local.{name}\n}}\n'
        for name in ("objects", "content_security_policy", "security_headers", "config", "app_paths")
    )
    (config / "main.tf").write_text(
        block(variables_tf, "variable", "dist_dir")
        + block(variables_tf, "variable", "web_api_key")
        + block(main, "locals")
        + outputs
    )
    result = terraform("outputs", str(config), "-var", f"dist_dir={dist}", "-var", f"web_api_key={API_KEY}")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    values: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return values


def test_each_file_gets_the_content_type_and_cache_control_the_local_gateway_sends(
    evaluated: dict[str, Any], tmp_path: Path
) -> None:
    objects = evaluated["objects"]
    assert "config.json" not in objects  # written from variables, never from the build
    assert ".built" not in objects and "assets/.cache" not in objects  # hidden files are not the app's
    assert set(objects) == {
        "index.html",
        "favicon.ico",
        "robots.txt",
        "LICENSE",
        "assets/index-3f9a1c.js",
        "assets/index-77aa00.css",
        "assets/Inter-4b5c6d.woff2",
        "assets/index-3f9a1c.js.map",
        "assets/logo-1b2c3d.SVG",
    }
    assert objects["index.html"] == {"content_type": "text/html; charset=utf-8", "cache_control": "no-cache"}
    assert objects["assets/index-3f9a1c.js"]["cache_control"] == "public, max-age=31536000, immutable"
    assert objects["LICENSE"]["content_type"] == "application/octet-stream"
    assert objects["assets/logo-1b2c3d.SVG"]["content_type"] == "image/svg+xml"
    # What the local gateway answers for the same files.
    (tmp_path / "assets").mkdir()
    local = WebApp(tmp_path, auth_emulator.web_config(9099))
    for name in ("index.html", *(n for n in objects if n.startswith("assets/"))):
        (tmp_path / name).write_text("x")
        page = local.serve("GET", "/" + name, [])
        assert page is not None and page[0] == 200, name
        headers = dict(page[1])
        assert headers["Content-Type"] == objects[name]["content_type"], name
        assert headers["Cache-Control"] == objects[name]["cache_control"], name


def test_the_content_types_and_cache_policies_are_the_same_tables() -> None:
    web = locals_(WEB)
    assert web["content_types"] == CONTENT_TYPES
    assert web["immutable"] == IMMUTABLE and web["revalidate"] == REVALIDATE


def test_the_security_headers_are_the_local_gateways_with_the_production_identity_provider(
    evaluated: dict[str, Any],
) -> None:
    csp = content_security_policy(PRODUCTION_IDENTITY_ORIGINS)
    assert evaluated["content_security_policy"] == csp
    assert evaluated["security_headers"] == [
        f"Content-Security-Policy: {csp}",
        "X-Content-Type-Options: nosniff",
        f"Referrer-Policy: {REFERRER_POLICY}",
    ]


def test_config_json_has_the_shape_the_app_reads_with_production_endpoints(evaluated: dict[str, Any]) -> None:
    config = evaluated["config"]
    assert config == {
        "auth": {
            "apiKey": API_KEY,
            "identityToolkitUrl": "https://identitytoolkit.googleapis.com",
            "secureTokenUrl": "https://securetoken.googleapis.com",
        }
    }
    assert set(config["auth"]) == set(auth_emulator.web_config(9099)["auth"])


def test_a_web_api_key_that_is_not_one_is_refused(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text(block(module_dir(None) / "variables.tf", "variable", "web_api_key"))
    assert terraform("plan", str(tmp_path), "-var", f"web_api_key={API_KEY}").returncode == 0
    refused = terraform("plan", str(tmp_path), "-var", "web_api_key=REPLACE_ME")
    assert refused.returncode != 0 and "Invalid value for variable" in refused.stdout


def test_terraform_refuses_to_deploy_without_a_build() -> None:
    config = resources(WEB, "google_storage_bucket_object")["config"]
    precondition = one(one(config["lifecycle"])["precondition"])
    assert precondition["condition"] == '${contains(local.files, "index.html")}'
    assert "make web" in precondition["error_message"]


def test_the_terraform_tool_outputs_command_fails_on_a_bad_config(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text('output "x" {\n  value = local.missing\n}\n')
    result = terraform("outputs", str(tmp_path))
    assert result.returncode != 0


def test_emails_link_to_the_app_at_the_first_domain() -> None:
    functions = locals_(module_dir("functions"))
    assert functions["notify_env"]["PUBLIC_URL"] == "${var.public_url}"
    assert module_calls()["functions"]["public_url"] == "https://${var.domains[0]}"


def test_a_public_url_with_a_path_or_a_slash_is_refused(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text(block(module_dir("functions") / "variables.tf", "variable", "public_url"))
    assert terraform("plan", str(tmp_path), "-var", "public_url=https://clinic.example").returncode == 0
    for bad in ("https://clinic.example/", "http://clinic.example", "https://clinic.example/app"):
        refused = terraform("plan", str(tmp_path), "-var", f"public_url={bad}")
        assert refused.returncode != 0 and "Invalid value for variable" in refused.stdout, bad
