"""Static checks of infra/terraform: there is no terraform binary and no cloud here,
so the configuration is parsed (python-hcl2) and its security properties, its
wiring between modules and its contract with the code are checked on the tree.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml
from hcl2 import SerializationOptions

ROOT = Path(__file__).resolve().parents[2]
TF = ROOT / "infra" / "terraform"
MODULES = ("network", "database", "functions", "gateway", "edge", "messaging", "monitoring", "web")
OPENAPI = TF / "openapi.yaml"
TEMPLATE_VARS = {"slots_url", "book_url", "cancel_url", "jwt_issuer", "jwks_uri", "jwt_audience"}
FUNCTIONS = {"slots", "book", "cancel", "notify"}

_OPTIONS = SerializationOptions(with_comments=False, explicit_blocks=False, strip_string_quotes=True)


@cache
def parse(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as f:
        result: dict[str, Any] = hcl2.load(f, serialization_options=_OPTIONS)
    return result


def module_dir(name: str | None) -> Path:
    return TF if name is None else TF / "modules" / name


def merged(directory: Path, kind: str) -> list[dict[str, Any]]:
    """All top-level blocks of one kind (resource, variable, ...) in a module."""
    out: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.tf")):
        out.extend(parse(path).get(kind, []))
    return out


def resources(directory: Path, rtype: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for block in merged(directory, "resource"):
        for t, named in block.items():
            if t == rtype:
                found.update(named)
    return found


def data_sources(directory: Path) -> set[tuple[str, str]]:
    return {(t, n) for block in merged(directory, "data") for t, named in block.items() for n in named}


def variables(directory: Path) -> dict[str, dict[str, Any]]:
    return {k: v for block in merged(directory, "variable") for k, v in block.items()}


def outputs(directory: Path) -> dict[str, dict[str, Any]]:
    return {k: v for block in merged(directory, "output") for k, v in block.items()}


def locals_(directory: Path) -> dict[str, Any]:
    return {k: v for block in merged(directory, "locals") for k, v in block.items()}


def module_calls() -> dict[str, dict[str, Any]]:
    return {k: v for block in merged(TF, "module") for k, v in block.items()}


def one(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    assert isinstance(blocks, list) and len(blocks) == 1, blocks
    return blocks[0]


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def all_tf_files() -> list[Path]:
    return sorted(TF.rglob("*.tf"))


def expression_text(directory: Path) -> str:
    """Every interpolated expression of a module, joined: what references are read from."""
    parts: list[str] = []
    for path in sorted(directory.glob("*.tf")):
        parts.extend(s for s in strings(parse(path)) if "${" in s)
    return "\n".join(parts)


# ---------------------------------------------------------------------------
# Layout, parsing, declarations
# ---------------------------------------------------------------------------


def test_layout_has_root_and_every_module() -> None:
    for directory in [TF, *(module_dir(m) for m in MODULES)]:
        for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf"):
            assert (directory / name).is_file(), f"missing {directory / name}"
    assert (TF / "environments" / "production" / "terraform.tfvars.example").is_file()


@pytest.mark.parametrize("path", all_tf_files(), ids=lambda p: str(p.relative_to(TF)))
def test_every_tf_file_parses(path: Path) -> None:
    assert isinstance(parse(path), dict)


def test_there_are_tf_files_in_every_module() -> None:
    files = {p.parent.name for p in all_tf_files()}
    assert set(MODULES) <= files


@pytest.mark.parametrize("module", [None, *MODULES])
def test_every_variable_has_type_and_description(module: str | None) -> None:
    declared = variables(module_dir(module))
    assert declared, "a module without variables"
    for name, spec in declared.items():
        assert spec.get("type"), f"variable {name} has no type"
        description = spec.get("description")
        assert isinstance(description, str) and len(description) > 10, f"{name}: no description"


@pytest.mark.parametrize("module", [None, *MODULES])
def test_every_output_has_description(module: str | None) -> None:
    for name, spec in outputs(module_dir(module)).items():
        assert spec.get("description"), f"output {name} has no description"


def _required_providers(directory: Path) -> dict[str, Any]:
    terraform = one(parse(directory / "versions.tf")["terraform"])
    return dict(one(terraform["required_providers"]))


def test_root_pins_google_google_beta_and_archive() -> None:
    providers = _required_providers(TF)
    for name in ("google", "google-beta", "archive"):
        assert providers[name]["source"] == f"hashicorp/{name}"
        assert providers[name]["version"].startswith("~>"), "pin with a pessimistic constraint"
    assert providers["google"]["version"] == providers["google-beta"]["version"]
    assert re.fullmatch(r"~> 7\.\d+", providers["google"]["version"])


@pytest.mark.parametrize("module", MODULES)
def test_modules_declare_the_providers_they_use(module: str) -> None:
    directory = module_dir(module)
    declared = set(_required_providers(directory))
    used = {"google"}
    text = "\n".join(p.read_text() for p in directory.glob("*.tf"))
    if re.search(r"provider\s*=\s*google-beta", text):
        used.add("google-beta")
    if 'data "archive_file"' in text:
        used.add("archive")
    assert used <= declared


@pytest.mark.parametrize("module", MODULES)
def test_module_calls_match_module_variables(module: str) -> None:
    """What terraform validate would catch: unknown or missing module arguments."""
    call = module_calls()[module]
    assert call["source"] == f"./modules/{module}"
    meta = {"source", "depends_on", "providers", "count", "for_each", "version"}
    passed = set(call) - meta
    declared = variables(module_dir(module))
    assert passed <= set(declared), f"unknown arguments: {passed - set(declared)}"
    required = {n for n, spec in declared.items() if "default" not in spec}
    assert required <= passed, f"missing arguments: {required - passed}"


def test_root_references_only_existing_module_outputs() -> None:
    refs = set(re.findall(r"module\.([a-z_]+)\.([a-z_]+)", expression_text(TF)))
    assert refs, "the root module wires no outputs"
    for module, output in refs:
        assert output in outputs(module_dir(module)), f"module.{module}.{output} does not exist"


@pytest.mark.parametrize("module", [None, *MODULES])
def test_references_point_at_declared_things(module: str | None) -> None:
    directory = module_dir(module)
    text = expression_text(directory)
    declared_vars = set(variables(directory))
    for name in re.findall(r"\bvar\.([a-z_0-9]+)", text):
        assert name in declared_vars, f"var.{name} is not declared"
    declared_locals = set(locals_(directory))
    for name in re.findall(r"\blocal\.([a-z_0-9]+)", text):
        assert name in declared_locals, f"local.{name} is not declared"
    declared_resources = {
        (t, n) for block in merged(directory, "resource") for t, named in block.items() for n in named
    }
    for rtype, name in re.findall(r"(?<![.\w])(google_[a-z0-9_]+)\.([a-z0-9_]+)", text):
        assert (rtype, name) in declared_resources, f"{rtype}.{name} is not declared"
    # Data sources declared in check blocks are scoped to them; add those too.
    declared_data = data_sources(directory) | {
        (t, n)
        for check in merged(directory, "check")
        for named_check in check.values()
        for block in named_check.get("data", [])
        for t, named in block.items()
        for n in named
    }
    for dtype, name in re.findall(r"\bdata\.([a-z0-9_]+)\.([a-z0-9_]+)", text):
        assert (dtype, name) in declared_data, f"data.{dtype}.{name} is not declared"


# ---------------------------------------------------------------------------
# Security properties
# ---------------------------------------------------------------------------


def test_no_public_principal_anywhere_but_on_the_error_bodies_and_the_web_app() -> None:
    # The two exceptions: the load balancer reads its backend buckets anonymously, the
    # static problem+json bodies (see test_the_load_balancer_answers_its_own_errors_as_problems)
    # and the built web app (tests/unit/test_web_terraform.py), read-only.
    public = resources(module_dir("edge"), "google_storage_bucket_iam_member")["problems_public"]
    assert public["member"] == "allUsers" and public["role"] == "roles/storage.objectViewer"
    assert public["bucket"] == "${google_storage_bucket.problems[0].name}"
    web = resources(module_dir("web"), "google_storage_bucket_iam_member")["web_public"]
    assert web["member"] == "allUsers" and web["role"] == "roles/storage.objectViewer"
    assert web["bucket"] == "${google_storage_bucket.web.name}"
    allowed = {module_dir("edge") / "main.tf", module_dir("web") / "main.tf"}
    for path in all_tf_files():
        for text in strings(parse(path)):
            if text == "allUsers" and path in allowed:
                continue
            assert "allUsers" not in text and "allAuthenticatedUsers" not in text, path
    for path in allowed:
        assert path.read_text().count("allUsers") == 1, path


def test_every_function_has_its_own_service_account() -> None:
    fn = module_dir("functions")
    accounts = resources(fn, "google_service_account")
    per_function = accounts["functions"]
    assert per_function["for_each"] == "${var.functions}"
    assert "${each.key}" in per_function["account_id"]

    notify = resources(fn, "google_cloudfunctions2_function")["notify"]
    api = resources(fn, "google_cloudfunctions2_function")["api"]
    notify_sc = one(notify["service_config"])
    api_sc = one(api["service_config"])
    assert notify_sc["service_account_email"] == '${google_service_account.functions["notify"].email}'
    assert api_sc["service_account_email"] == "${google_service_account.functions[each.key].email}"
    assert locals_(fn)["api_functions"] == '${toset(["slots", "book", "cancel"])}'
    assert api["for_each"] == "${local.api_functions}"

    # The functions map always holds exactly the four functions.
    root_default = variables(TF)["functions"]["default"]
    assert set(root_default) == FUNCTIONS
    assert set(variables(fn)["functions"]["validation"][0]["condition"].split('"')[1::2]) == FUNCTIONS


def test_functions_run_python312_from_their_own_bundle() -> None:
    fn = module_dir("functions")
    for name, function in resources(fn, "google_cloudfunctions2_function").items():
        build = one(function["build_config"])
        assert build["runtime"] == "python312"
        source = one(one(build["source"])["storage_source"])
        key = '"notify"' if name == "notify" else "each.key"
        assert source["object"] == f"${{google_storage_bucket_object.bundle[{key}].name}}"
        expected_entry = "notify" if name == "notify" else "${each.key}"
        assert build["entry_point"] == expected_entry
    archive = next(iter(b["archive_file"] for b in merged(fn, "data") if "archive_file" in b))
    bundle = archive["bundle"]
    assert bundle["source_dir"] == "${var.bundles_dir}/${each.key}"
    obj = resources(fn, "google_storage_bucket_object")["bundle"]
    assert "output_md5" in obj["name"], "the object name must change when the bundle does"
    assert module_calls()["functions"]["bundles_dir"] == '${abspath("${path.root}/../../build/functions")}'


def test_notify_is_internal_only_and_invoked_by_tasks_and_scheduler_only() -> None:
    fn = module_dir("functions")
    notify_sc = one(resources(fn, "google_cloudfunctions2_function")["notify"]["service_config"])
    assert notify_sc["ingress_settings"] == "ALLOW_INTERNAL_ONLY"

    invokers = resources(fn, "google_cloud_run_service_iam_member")
    notify_inv = invokers["notify_invoker"]
    assert notify_inv["role"] == "roles/run.invoker"
    assert notify_inv["service"] == "${google_cloudfunctions2_function.notify.name}"
    assert notify_inv["for_each"] == {
        "tasks": "${var.tasks_invoker_email}",
        "scheduler": "${var.scheduler_email}",
    }


def test_api_functions_are_invoked_only_by_the_gateway_account() -> None:
    fn = module_dir("functions")
    api_inv = resources(fn, "google_cloud_run_service_iam_member")["api_invoker"]
    assert api_inv["role"] == "roles/run.invoker"
    assert api_inv["member"] == "serviceAccount:${var.gateway_service_account_email}"
    assert api_inv["for_each"] == "${google_cloudfunctions2_function.api}"
    assert module_calls()["functions"]["gateway_service_account_email"] == ("${module.gateway.service_account_email}")
    # Nobody else holds an invoker role anywhere in the configuration.
    for module in MODULES:
        for rtype in ("google_cloud_run_service_iam_member", "google_cloudfunctions2_function_iam_member"):
            for name in resources(module_dir(module), rtype):
                assert (module, name) in {
                    ("functions", "api_invoker"),
                    ("functions", "notify_invoker"),
                    ("functions", "self_invoker"),
                }
    # A function's own account on its own service: what Direct VPC egress asks for.
    own = resources(fn, "google_cloud_run_service_iam_member")["self_invoker"]
    assert own["for_each"] == "${var.functions}"
    assert own["member"] == "${google_service_account.functions[each.key].member}"
    assert "google_cloudfunctions2_function.api[each.key].name" in own["service"]
    # The gateway signs its calls to the backends as that same account.
    gw = module_dir("gateway")
    cfg = resources(gw, "google_api_gateway_api_config")["clinic"]
    backend = one(one(cfg["gateway_config"])["backend_config"])
    assert backend["google_service_account"] == "${google_service_account.gateway.email}"


def test_the_build_account_reads_the_sources_cloud_functions_stages() -> None:
    fn = module_dir("functions")
    staged = resources(fn, "google_project_iam_member")["build_reads_staged_sources"]
    assert staged["role"] == "roles/storage.objectAdmin"
    assert staged["member"] == "${google_service_account.build.member}"
    condition = one(staged["condition"])
    assert condition["expression"] == 'resource.name.startsWith("projects/_/buckets/gcf-v2-sources-")'
    for function in resources(fn, "google_cloudfunctions2_function").values():
        assert one(function["build_config"])["service_account"] == "${google_service_account.build.id}"


def test_dispatchers_get_exactly_the_roles_they_need() -> None:
    fn = module_dir("functions")
    assert locals_(fn)["dispatchers"] == '${toset(["book", "cancel", "notify"])}'
    roles = {
        ("google_cloud_tasks_queue_iam_member", "enqueuer"): "roles/cloudtasks.enqueuer",
        ("google_service_account_iam_member", "act_as_tasks_invoker"): "roles/iam.serviceAccountUser",
        ("google_pubsub_topic_iam_member", "publisher"): "roles/pubsub.publisher",
    }
    for (rtype, name), role in roles.items():
        grant = resources(fn, rtype)[name]
        assert grant["role"] == role
        assert grant["for_each"] == "${local.dispatchers}"
        assert grant["member"] == "${google_service_account.functions[each.key].member}"
    secret = resources(fn, "google_secret_manager_secret_iam_member")["notify_smtp"]
    assert secret["member"] == '${google_service_account.functions["notify"].member}'
    # Only notify reads the SMTP secrets; the API functions read only the edge token.
    api_sc = one(resources(fn, "google_cloudfunctions2_function")["api"]["service_config"])
    assert {s["key"] for s in api_sc["secret_environment_variables"]} == {"EDGE_TOKEN"}


def test_cloud_sql_is_private_iam_authenticated_backed_up_and_protected() -> None:
    db = module_dir("database")
    instance = resources(db, "google_sql_database_instance")["main"]
    assert instance["deletion_protection"] is True
    settings = one(instance["settings"])
    assert settings["deletion_protection_enabled"] is True
    ip = one(settings["ip_configuration"])
    assert ip["ipv4_enabled"] is False
    assert ip["private_network"] == "${var.network_id}"
    assert ip["ssl_mode"] == "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"
    assert "authorized_networks" not in ip
    flags = {f["name"]: f["value"] for f in settings["database_flags"]}
    assert flags["cloudsql.iam_authentication"] == "on"
    backup = one(settings["backup_configuration"])
    assert backup["enabled"] is True
    assert backup["point_in_time_recovery_enabled"] is True
    assert settings["availability_type"] == "${var.availability_type}"

    users = resources(db, "google_sql_user")
    assert users["functions"]["type"] == "CLOUD_IAM_SERVICE_ACCOUNT"
    assert users["migrations"]["type"] == "CLOUD_IAM_SERVICE_ACCOUNT"
    assert "password" not in users["functions"]
    assert module_calls()["database"]["iam_users"] == "${module.functions.service_account_emails}"
    for name in ("functions_sql_client", "functions_sql_instance_user"):
        grant = resources(db, "google_project_iam_member")[name]
        assert grant["for_each"] == "${var.iam_users}"
        assert one(grant["condition"])["expression"] == "${local.instance_condition}"
    assert locals_(db)["instance_condition"].startswith("resource.name == 'projects/")


def test_no_bucket_or_database_can_be_destroyed_with_its_data() -> None:
    for module in MODULES:
        for name, bucket in resources(module_dir(module), "google_storage_bucket").items():
            assert bucket.get("force_destroy") in (None, False), name
            # Static error bodies and the built web app, read anonymously by the load balancer.
            public = (module, name) in (("edge", "problems"), ("web", "web"))
            assert bucket["public_access_prevention"] == ("inherited" if public else "enforced"), name
            assert bucket["uniform_bucket_level_access"] is True, name


def test_db_user_matches_the_cloud_sql_iam_user_name() -> None:
    fn, db = module_dir("functions"), module_dir("database")
    db_env = locals_(fn)["db_env"]
    assert 'DB_USER = trimsuffix(google_service_account.functions[name].email, ".gserviceaccount.com")' in db_env
    assert 'trimsuffix(email, ".gserviceaccount.com")' in locals_(db)["iam_users"]


def test_only_requests_through_the_load_balancer_reach_the_api_functions() -> None:
    # The load balancer stamps every request; the API functions (not notify) check the stamp.
    backend = resources(module_dir("edge"), "google_compute_backend_service")["gateway"]
    assert backend["custom_request_headers"] == ["X-Clinic-Edge: ${var.edge_token}"]
    fn = module_dir("functions")
    functions = resources(fn, "google_cloudfunctions2_function")
    api_sc = one(functions["api"]["service_config"])
    api_env = api_sc["environment_variables"]
    assert 'CORS_ALLOWED_ORIGINS = join(",", var.cors_allowed_origins)' in api_env
    # The token is a secret environment variable: not readable with Viewer on the project.
    assert "EDGE_TOKEN" not in str(api_env)
    secret = one([s for s in api_sc["secret_environment_variables"] if s["key"] == "EDGE_TOKEN"])
    assert secret["secret"] == "${google_secret_manager_secret.edge_token.secret_id}"
    assert secret["version"] == "${google_secret_manager_secret_version.edge_token.version}"
    assert resources(fn, "google_secret_manager_secret_version")["edge_token"]["secret_data"] == "${var.edge_token}"
    reader = resources(fn, "google_secret_manager_secret_iam_member")["edge_token"]
    assert reader["role"] == "roles/secretmanager.secretAccessor"
    assert reader["for_each"] == "${local.api_functions}"  # slots, book, cancel: not notify
    assert reader["member"] == "${google_service_account.functions[each.key].member}"
    assert "${google_secret_manager_secret_iam_member.edge_token}" in functions["api"]["depends_on"]
    notify_sc = one(functions["notify"]["service_config"])
    assert "EDGE_TOKEN" not in str(notify_sc["environment_variables"])
    assert "EDGE_TOKEN" not in {s["key"] for s in notify_sc["secret_environment_variables"]}
    assert variables(fn)["edge_token"]["sensitive"] is True
    assert variables(module_dir("edge"))["edge_token"]["sensitive"] is True
    calls = module_calls()
    assert calls["edge"]["edge_token"] == calls["functions"]["edge_token"] == "${random_password.edge_token.result}"
    token = resources(TF, "random_password")["edge_token"]
    assert token["length"] >= 32 and token["special"] is False
    from shared.web import EDGE_HEADER

    assert EDGE_HEADER == "X-Clinic-Edge"


def test_cloud_armor_has_waf_rate_ban_and_default_rules() -> None:
    edge = module_dir("edge")
    policy = resources(edge, "google_compute_security_policy")["edge"]
    rules = policy["rule"]
    priorities = [r["priority"] for r in rules]
    assert len(priorities) == len(set(priorities)), "duplicate rule priorities"

    expressions = {one(one(r["match"])["expr"])["expression"]: r for r in rules if "expr" in one(r["match"])}
    for waf in ("sqli", "xss", "lfi", "rce", "scannerdetection"):
        matching = [e for e in expressions if re.search(rf"evaluatePreconfiguredWaf\('{waf}-v33-", e)]
        assert matching, f"no {waf} rule"
        rule = expressions[matching[0]]
        assert rule["action"].startswith("deny("), waf
        assert not rule.get("preview", False), waf
    canary = expressions["evaluatePreconfiguredExpr('cve-canary')"]
    assert canary["action"].startswith("deny(") and canary.get("preview") is False

    bans = [r for r in rules if r["action"] == "rate_based_ban"]
    assert len(bans) == 1
    limits = one(bans[0]["rate_limit_options"])
    assert limits["enforce_on_key"] == "IP"
    assert limits["exceed_action"] == "deny(429)"
    assert limits["ban_duration_sec"] == "${var.rate_limit_ban_seconds}"
    assert one(limits["rate_limit_threshold"])["count"] == "${var.rate_limit_requests_per_minute}"
    assert one(limits["ban_threshold"])

    default = [r for r in rules if r["priority"] == 2147483647]
    assert len(default) == 1
    assert one(one(default[0]["match"])["config"])["src_ip_ranges"] == ["*"]
    # Every WAF and ban rule is evaluated before the default.
    assert max(p for p in priorities if p != 2147483647) < 2147483647

    backend = resources(edge, "google_compute_backend_service")["gateway"]
    assert backend["security_policy"] == "${google_compute_security_policy.edge.id}"
    assert one(backend["log_config"])["enable"] is True


def test_load_balancer_terminates_https_and_redirects_http() -> None:
    edge = module_dir("edge")
    neg = resources(edge, "google_compute_region_network_endpoint_group")["gateway"]
    assert neg["provider"] == "google-beta"
    assert neg["network_endpoint_type"] == "SERVERLESS"
    deployment = one(neg["serverless_deployment"])
    assert deployment["platform"] == "apigateway.googleapis.com"
    assert deployment["resource"] == "${var.gateway_id}"
    assert module_calls()["edge"]["gateway_id"] == "${module.gateway.gateway_id}"

    proxy = resources(edge, "google_compute_target_https_proxy")["api"]
    assert proxy["ssl_certificates"] == ["${google_compute_managed_ssl_certificate.api.id}"]
    assert resources(edge, "google_compute_ssl_policy")["modern"]["min_tls_version"] == "TLS_1_2"
    redirect = one(resources(edge, "google_compute_url_map")["http_redirect"]["default_url_redirect"])
    assert redirect["https_redirect"] is True
    ports = {r["port_range"] for r in resources(edge, "google_compute_global_forwarding_rule").values()}
    assert ports == {"443", "80"}


def test_functions_are_built_only_once_the_build_account_holds_its_roles() -> None:
    functions = resources(module_dir("functions"), "google_cloudfunctions2_function")
    grants = {
        "google_project_iam_member.build",
        "google_storage_bucket_iam_member.build_reads_sources",
        "google_project_iam_member.build_reads_staged_sources",
    }
    for name in ("api", "notify"):
        waits_for = {ref.strip("${}") for ref in functions[name]["depends_on"]}
        assert grants <= waits_for, name


def test_notify_timeout_fits_the_deadlines_it_also_sets() -> None:
    from shared.settings import Settings

    deadline = Settings.model_fields["tasks_dispatch_deadline_s"].metadata
    assert any(getattr(m, "le", None) == 1800 for m in deadline)
    rules = [v["condition"] for v in variables(TF)["functions"]["validation"]]
    assert any('try(var.functions["notify"].timeout_seconds, 0) <= 1800' in rule for rule in rules)


def test_the_load_balancer_answers_its_own_errors_as_problems() -> None:
    edge = module_dir("edge")
    files = sorted((edge / "problems").glob("*.json"))
    codes = {int(f.stem) for f in files}
    assert codes == {401, 429, 500, 502, 504}
    for path in files:
        body = json.loads(path.read_text())
        assert set(body) == {"type", "title", "status", "detail"}, path
        assert body["status"] == int(path.stem) and body["type"].startswith("/problems/"), path

    # Replacing a body must hide nothing our functions say: they answer none of these
    # codes except 401 (a token without 'sub' or 'email', which the generic body names)
    # and 500 (a generic body too). 503 keeps their Retry-After.
    from shared import errors

    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.DomainError)]
    ours = {c.status for c in classes}
    assert codes & ours == {401}
    assert 503 in ours and 503 not in codes

    url_map = resources(edge, "google_compute_url_map")["https"]
    policy = one(url_map["dynamic"])["default_custom_error_response_policy"]
    assert policy["for_each"] == "${google_compute_backend_bucket.problems}"
    content = one(policy["content"])
    assert content["error_service"] == "${default_custom_error_response_policy.value.id}"
    rule = one(content["dynamic"])["error_response_rule"]
    assert rule["for_each"] == "${local.problem_codes}"
    rule = one(rule["content"])
    assert rule["match_response_codes"] == ["${error_response_rule.value}"]
    assert rule["override_response_code"] == "${tonumber(error_response_rule.value)}"
    assert rule["path"] == "/${local.problem_prefix}${error_response_rule.value}.json"

    names = locals_(edge)
    assert 'fileset("${path.module}/problems", "*.json")' in names["problem_files"]
    assert 'var.load_balancing_scheme == "EXTERNAL_MANAGED"' in names["problem_files"]
    objects = resources(edge, "google_storage_bucket_object")["problem"]
    assert objects["name"] == "${local.problem_prefix}${each.value}"
    assert objects["content_type"] == "application/problem+json"
    backend = resources(edge, "google_compute_backend_bucket")["problems"]
    assert backend["bucket_name"] == "${google_storage_bucket.problems[0].name}"
    assert backend["custom_response_headers"] == ["Access-Control-Allow-Origin: *"]
    assert module_calls()["edge"]["problem_error_responses"] == "${var.problem_error_responses}"
    assert variables(TF)["problem_error_responses"]["default"] is True


# ---------------------------------------------------------------------------
# Contract with the code (shared/settings.py)
# ---------------------------------------------------------------------------


def test_queue_max_attempts_and_tasks_max_attempts_come_from_one_variable() -> None:
    calls = module_calls()
    assert calls["messaging"]["max_attempts"] == "${var.tasks_max_attempts}"
    assert calls["functions"]["tasks_max_attempts"] == "${var.tasks_max_attempts}"

    queue = resources(module_dir("messaging"), "google_cloud_tasks_queue")["notifications"]
    assert one(queue["retry_config"])["max_attempts"] == "${var.max_attempts}"

    fn = module_dir("functions")
    dispatch_env = locals_(fn)["dispatch_env"]
    assert dispatch_env["TASKS_MAX_ATTEMPTS"] == "${tostring(var.tasks_max_attempts)}"
    notify_env = one(resources(fn, "google_cloudfunctions2_function")["notify"]["service_config"])
    assert "local.dispatch_env" in notify_env["environment_variables"]


def test_each_instance_runs_a_thread_per_request_it_may_be_sent_and_logs_with_its_project() -> None:
    fn = module_dir("functions")
    runtime_env = locals_(fn)["runtime_env"]
    assert "THREADS = tostring(cfg.concurrency)" in runtime_env
    assert "GOOGLE_CLOUD_PROJECT = var.project_id" in runtime_env
    functions = resources(fn, "google_cloudfunctions2_function")
    assert 'local.runtime_env["notify"]' in one(functions["notify"]["service_config"])["environment_variables"]
    assert "local.runtime_env[each.key]" in one(functions["api"]["service_config"])["environment_variables"]


@pytest.mark.parametrize(
    ("setting", "env", "given_to"),
    [
        # The upcoming cap: bookings only (book).
        ("max_upcoming_appointments", "booking_env", 'each.key == "book" ? local.booking_env : {}'),
        # A patient's changes per hour: bookings (book) and moves (cancel).
        ("max_changes_per_hour", "changes_env", 'contains(["book", "cancel"], each.key) ? local.changes_env : {}'),
    ],
)
def test_the_booking_limits_reach_their_functions_with_the_code_defaults(setting: str, env: str, given_to: str) -> None:
    from shared.settings import Settings

    fn = module_dir("functions")
    assert locals_(fn)[env][setting.upper()] == f"${{tostring(var.{setting})}}"
    api_env = one(resources(fn, "google_cloudfunctions2_function")["api"]["service_config"])["environment_variables"]
    assert given_to in api_env
    assert module_calls()["functions"][setting] == f"${{var.{setting}}}"
    assert variables(TF)[setting]["default"] == Settings.model_fields[setting].default


@pytest.mark.parametrize("setting", ["waitlist_max_entries", "waitlist_lead_minutes", "hold_minutes"])
def test_the_waitlist_settings_reach_every_function_with_the_code_defaults(setting: str) -> None:
    from shared.settings import Settings

    fn = module_dir("functions")
    assert locals_(fn)["waitlist_env"][setting.upper()] == f"${{tostring(var.{setting})}}"
    api_env = one(resources(fn, "google_cloudfunctions2_function")["api"]["service_config"])["environment_variables"]
    notify_env = one(resources(fn, "google_cloudfunctions2_function")["notify"]["service_config"])
    assert "local.waitlist_env" in api_env and "local.waitlist_env" in notify_env["environment_variables"]
    assert module_calls()["functions"][setting] == f"${{var.{setting}}}"
    assert variables(TF)[setting]["default"] == Settings.model_fields[setting].default


def test_production_default_attempts_match_the_code_default() -> None:
    from shared.settings import Settings

    default = Settings.model_fields["tasks_max_attempts"].default
    assert variables(TF)["tasks_max_attempts"]["default"] == default


def _env_names_set_by_terraform() -> set[str]:
    fn = module_dir("functions")
    loc = locals_(fn)
    names = set(re.findall(r"\b([A-Z][A-Z0-9_]+) =", loc["db_env"]))
    names |= set(loc["dispatch_env"]) | set(loc["notify_env"]) | set(loc["booking_env"])
    notify_sc = one(resources(fn, "google_cloudfunctions2_function")["notify"]["service_config"])
    names |= {s["key"] for s in notify_sc["secret_environment_variables"]}
    api_sc = one(resources(fn, "google_cloudfunctions2_function")["api"]["service_config"])
    names |= {s["key"] for s in api_sc["secret_environment_variables"]}
    return names


def test_every_environment_variable_terraform_sets_is_read_by_the_code() -> None:
    from shared.settings import Settings

    fields = {name.upper() for name in Settings.model_fields}
    names = _env_names_set_by_terraform()
    assert names, "no environment variables found"
    assert names <= fields, f"set but never read: {names - fields}"


def test_the_production_contract_variables_are_all_set() -> None:
    required = {
        "INSTANCE_CONNECTION_NAME", "DB_USER", "DB_NAME", "DB_IP_TYPE", "TASKS_QUEUE",
        "NOTIFY_URL", "TASKS_SERVICE_ACCOUNT", "TASKS_MAX_ATTEMPTS", "VERIFY_OIDC",
        "OIDC_AUDIENCE", "NOTIFY_INVOKERS", "PUBSUB_TOPIC", "SMTP_HOST", "SMTP_PORT",
        "SMTP_STARTTLS", "MAIL_FROM", "SMTP_USERNAME", "SMTP_PASSWORD", "REMINDER_OFFSETS",
        "PUBLIC_URL",
    }  # fmt: skip
    assert required <= _env_names_set_by_terraform()


def test_notify_urls_are_run_app_and_paths_match_the_routes() -> None:
    fn = module_dir("functions")
    loc = locals_(fn)
    # Cloud Tasks and Cloud Scheduler reach an internal-only service only
    # through its default run.app URL.
    assert re.fullmatch(r"https://\$\{[^}]+\}-\$\{[^}]+\}\.\$\{var\.region\}\.run\.app", loc["notify_url"])
    assert loc["dispatch_env"]["NOTIFY_URL"] == "${local.notify_url}/tasks/notify"
    assert loc["dispatch_env"]["OIDC_AUDIENCE"] == "${local.notify_url}"
    assert loc["notify_env"]["OIDC_AUDIENCE"] == "${local.notify_url}"
    assert "var.tasks_invoker_email" in loc["notify_env"]["NOTIFY_INVOKERS"]
    assert "var.scheduler_email" in loc["notify_env"]["NOTIFY_INVOKERS"]
    # Cloud Run strips the signature of the token it checked: notify must know it sits behind IAM.
    assert loc["notify_env"]["OIDC_CHECKED_BY_CLOUD_RUN"] == "true"

    job = resources(module_dir("messaging"), "google_cloud_scheduler_job")["outbox_sweep"]
    target = one(job["http_target"])
    assert target["uri"] == "${var.notify_url}/tasks/sweep"
    assert target["http_method"] == "POST"
    token = one(target["oidc_token"])
    assert token["service_account_email"] == "${google_service_account.scheduler.email}"
    assert token["audience"] == "${var.notify_url}"
    assert module_calls()["messaging"]["notify_url"] == "${module.functions.notify_url}"


def test_pubsub_topic_and_dead_letter() -> None:
    msg = module_dir("messaging")
    topics = resources(msg, "google_pubsub_topic")
    assert topics["appointment_events"]["name"] == "appointment-events"
    assert topics["appointment_events"]["message_retention_duration"]
    sub = resources(msg, "google_pubsub_subscription")["integrations"]
    dead = one(sub["dead_letter_policy"])
    assert dead["dead_letter_topic"] == "${google_pubsub_topic.appointment_events_dead_letter.id}"
    assert sub["enable_message_ordering"] is True


def test_connection_budget_holds_for_defaults_and_the_example() -> None:
    declared = variables(TF)
    conditions = [v["condition"] for v in declared["functions"]["validation"]]
    assert any("var.db_max_connections" in c for c in conditions), "budget is not enforced at plan"

    def budget(values: dict[str, Any]) -> tuple[int, int]:
        fns = values["functions"]
        used = sum(f["max_instances"] * f["db_pool_size"] for f in fns.values())
        return used + values["db_reserved_connections"], values["db_max_connections"]

    defaults = {k: declared[k]["default"] for k in ("functions", "db_reserved_connections", "db_max_connections")}
    used, limit = budget(defaults)
    assert used <= limit
    example = parse(TF / "environments" / "production" / "terraform.tfvars.example")
    used, limit = budget(example)
    assert used <= limit


def test_example_tfvars_sets_every_required_variable_and_nothing_unknown() -> None:
    example = parse(TF / "environments" / "production" / "terraform.tfvars.example")
    declared = variables(TF)
    assert set(example) <= set(declared), f"unknown: {set(example) - set(declared)}"
    required = {n for n, spec in declared.items() if "default" not in spec}
    assert required <= set(example)


# ---------------------------------------------------------------------------
# OpenAPI: the one document both gateways use
# ---------------------------------------------------------------------------


def test_gateway_module_templates_the_shared_openapi_file() -> None:
    assert module_calls()["gateway"]["openapi_path"] == "${path.root}/openapi.yaml"
    gw = module_dir("gateway")
    template = locals_(gw)["openapi"]
    assert template.startswith("${templatefile(var.openapi_path, {")
    keys = set(re.findall(r"\b([a-z_]+) = var\.", template))
    assert keys == TEMPLATE_VARS
    cfg = resources(gw, "google_api_gateway_api_config")["clinic"]
    document = one(one(cfg["openapi_documents"])["document"])
    assert document["contents"] == "${base64encode(local.openapi)}"


def test_local_gateway_reads_the_same_file() -> None:
    from local import paths

    assert paths.OPENAPI.resolve() == OPENAPI.resolve()
    assert "OPENAPI" in (ROOT / "local" / "gateway.py").read_text(encoding="utf-8")


def _openapi_text() -> str:
    assert OPENAPI.is_file(), "infra/terraform/openapi.yaml is missing"
    return OPENAPI.read_text(encoding="utf-8")


def _render(text: str) -> dict[str, Any]:
    """What templatefile() produces, with sample values."""
    values = {
        "slots_url": "https://clinic-slots-abc-ew.a.run.app",
        "book_url": "https://clinic-book-abc-ew.a.run.app",
        "cancel_url": "https://clinic-cancel-abc-ew.a.run.app",
        "jwt_issuer": "https://securetoken.google.com/clinic-prod",
        "jwks_uri": "https://www.googleapis.com/service_accounts/v1/metadata/x509/securetoken@system.gserviceaccount.com",
        "jwt_audience": "clinic-prod",
    }
    rendered = re.sub(r"\$\{([a-z_]+)\}", lambda m: values[m.group(1)], text)
    document: dict[str, Any] = yaml.safe_load(rendered)
    return document


def test_openapi_placeholders_are_exactly_the_template_variables() -> None:
    text = _openapi_text()
    # templatefile() fails on any ${...} it has no value for, and treats %{ as
    # a directive; a literal must be written $${ or %%{.
    placeholders = set(re.findall(r"(?<!\$)\$\{([^}]*)\}", text))
    assert placeholders == TEMPLATE_VARS
    assert not re.search(r"(?<!%)%\{", text)


def test_openapi_is_valid_swagger_2() -> None:
    # Schemathesis 4 keeps the Swagger 2.0 meta-schema and validates with jsonschema-rs.
    from jsonschema_rs import Draft4Validator
    from schemathesis.specs.openapi.definitions import SWAGGER_20

    document = _render(_openapi_text())
    assert document["swagger"] == "2.0"
    # The structure only, as jsonschema's Draft4Validator did: jsonschema-rs would also check
    # "format", and API Gateway's own securityDefinitions take authorizationUrl: "" (not a URI).
    validator = Draft4Validator(SWAGGER_20, validate_formats=False, offline=True)
    errors = sorted(validator.iter_errors(document), key=str)
    assert not errors, "\n".join(e.message for e in errors[:10])


def test_every_operation_has_operation_id_and_backend() -> None:
    document = _render(_openapi_text())
    backends = {
        "https://clinic-slots-abc-ew.a.run.app": "slots",
        "https://clinic-book-abc-ew.a.run.app": "book",
        "https://clinic-cancel-abc-ew.a.run.app": "cancel",
    }
    timeouts = {k: v["timeout_seconds"] for k, v in variables(TF)["functions"]["default"].items()}
    seen_ids: set[str] = set()
    methods = {"get", "put", "post", "delete", "options", "head", "patch"}
    count = 0
    for path, item in document["paths"].items():
        for method, op in item.items():
            if method not in methods:
                continue
            count += 1
            where = f"{method.upper()} {path}"
            assert op.get("operationId"), f"{where}: no operationId"
            assert op["operationId"] not in seen_ids, f"{where}: duplicate operationId"
            seen_ids.add(op["operationId"])
            backend = op.get("x-google-backend") or document.get("x-google-backend")
            assert backend, f"{where}: no x-google-backend"
            assert backend["address"] in backends, f"{where}: unknown backend"
            assert backend["jwt_audience"] == backend["address"], f"{where}: audience"
            assert backend.get("path_translation") == "APPEND_PATH_TO_ADDRESS"
            deadline = backend.get("deadline")
            if deadline is not None:
                assert float(deadline) <= timeouts[backends[backend["address"]]], where
            for requirement in op.get("security", []):
                assert set(requirement) <= set(document["securityDefinitions"]), where
    assert count >= 10, "fewer operations than the HTTP API has"
    # The gateway never routes the notify endpoints.
    assert not any(p.startswith("/tasks") for p in document["paths"])


def test_openapi_identity_provider_comes_from_the_template() -> None:
    text = _openapi_text()
    for key, var in (
        ("x-google-issuer", "jwt_issuer"),
        ("x-google-jwks_uri", "jwks_uri"),
        ("x-google-audiences", "jwt_audience"),
    ):
        assert re.search(rf"{key}:\s*\"?\$\{{{var}\}}", text), key
    root = locals_(TF)
    assert root["jwt_issuer"] == '${coalesce(var.jwt_issuer, "https://securetoken.google.com/${var.project_id}")}'
    assert root["jwt_audience"] == "${coalesce(var.jwt_audience, var.project_id)}"
    assert variables(TF)["jwks_uri"]["default"].endswith("securetoken@system.gserviceaccount.com")


# ---------------------------------------------------------------------------
# The parser itself: a broken helper would make every test above vacuous.
# ---------------------------------------------------------------------------


def test_helpers_see_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tf"
    bad.write_text(
        'resource "google_cloud_run_service_iam_member" "x" {\n'
        '  role   = "roles/run.invoker"\n'
        '  member = "allUsers"\n'
        "}\n"
        'variable "v" {\n  default = 1\n}\n'
    )
    parsed = parse(bad)
    assert any("allUsers" in s for s in strings(parsed))
    spec = variables(tmp_path)["v"]
    assert not spec.get("type") and not spec.get("description")


# ---------------------------------------------------------------------------
# Migrations in production: infra/cloudbuild/migrate.yaml
# ---------------------------------------------------------------------------

CLOUDBUILD = ROOT / "infra" / "cloudbuild" / "migrate.yaml"


def _migrate_build() -> dict[str, Any]:
    build: dict[str, Any] = yaml.safe_load(CLOUDBUILD.read_text(encoding="utf-8"))
    return build


def test_migrate_build_runs_clinic_migrate_on_the_private_pool_as_the_migrations_account() -> None:
    build = _migrate_build()
    step = one(build["steps"])
    script = step["args"][-1]
    assert "clinic migrate" in script
    assert "-r requirements.lock" in script and (ROOT / "requirements.lock").is_file()
    assert build["options"]["pool"]["name"] == "${_POOL}"
    assert build["options"]["logging"] == "CLOUD_LOGGING_ONLY"
    assert build["serviceAccount"] == "projects/$PROJECT_ID/serviceAccounts/${_SERVICE_ACCOUNT}"
    # Every value the operator passes comes from a Terraform output.
    header = CLOUDBUILD.read_text(encoding="utf-8")
    for name in re.findall(r"output -raw ([a-z_]+)", header):
        assert name in outputs(TF), f"migrate.yaml refers to a missing output {name}"
    wanted = {
        "migrations_worker_pool",
        "migrations_service_account",
        "instance_connection_name",
        "migrations_db_user",
        "migrations_staging_bucket",
    }
    assert wanted <= set(re.findall(r"output -raw ([a-z_]+)", header))


def test_migrations_account_is_an_iam_db_user_that_owns_the_schema() -> None:
    db = module_dir("database")
    user = resources(db, "google_sql_user")["migrations"]
    assert user["type"] == "CLOUD_IAM_SERVICE_ACCOUNT"
    assert user["database_roles"] == ["cloudsqlsuperuser"]
    pool = resources(db, "google_cloudbuild_worker_pool")["migrations"]
    assert one(pool["network_config"])["peered_network"] == "${var.network_id}"
    roles = {
        g["role"] for name, g in resources(db, "google_project_iam_member").items() if name.startswith("migrations")
    }
    assert {"roles/cloudsql.client", "roles/cloudsql.instanceUser", "roles/logging.logWriter"} <= roles


def test_migrate_build_environment_makes_the_code_use_the_connector_with_iam(monkeypatch: pytest.MonkeyPatch) -> None:
    """The step's environment, read by shared.settings, connects via the Cloud SQL connector."""
    import google.cloud.sql.connector as connector_module

    import shared.db.connection
    from local import cli
    from shared.settings import Settings

    env = dict(item.split("=", 1) for item in one(_migrate_build()["steps"])["env"])
    substitutions = {
        "${_INSTANCE_CONNECTION_NAME}": "clinic-prod:europe-west1:clinic-pg",
        "${_DB_USER}": "clinic-migrate@clinic-prod.iam",
        "${_DB_NAME}": _migrate_build()["substitutions"]["_DB_NAME"],
    }
    monkeypatch.delenv("DATABASE_URL", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, substitutions.get(value, value))

    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    class FakeConnection:
        def execute_simple(self, sql: str) -> None:
            assert "statement_timeout" in sql

    class FakeConnector:
        def __init__(self, **kwargs: Any) -> None:
            pass

        def connect(self, *args: Any, **kwargs: Any) -> FakeConnection:
            calls.append((args, kwargs))
            return FakeConnection()

    monkeypatch.setattr(connector_module, "Connector", FakeConnector)
    monkeypatch.setattr(shared.db.connection, "_connector", None)
    shared.db.connection.connect(Settings.from_env())

    (args, kwargs) = one(calls)
    assert args == ("clinic-prod:europe-west1:clinic-pg", "pg8000")
    assert kwargs["user"] == "clinic-migrate@clinic-prod.iam"
    assert kwargs["db"] == "clinic" == variables(TF)["db_name"]["default"]
    assert kwargs["enable_iam_auth"] is True
    assert kwargs["ip_type"] == connector_module.IPTypes.PRIVATE
    assert kwargs["timeout"] == Settings.model_fields["db_connect_timeout"].default
    # And `clinic migrate` is a command of the CLI the step calls.
    with pytest.raises(SystemExit):
        cli.main(["migrate", "--help"])
