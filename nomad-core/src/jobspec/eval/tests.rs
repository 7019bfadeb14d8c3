//! Tests of the evaluation layer: variables and their sources, locals, templates, runtime
//! interpolations, dynamic blocks, functions, and what happens on bad or hostile input.

use std::path::PathBuf;

use hcl::{Body, Value};

use super::evaluate;
use crate::jobspec::ParseOptions;
use crate::{Error, ValidationError};

// -- helpers ---------------------------------------------------------------------------------

fn run(src: &str, opts: &ParseOptions) -> Result<Body, Error> {
    evaluate(src, "job.nomad.hcl", opts)
}

fn ok(src: &str, opts: &ParseOptions) -> Body {
    match run(src, opts) {
        Ok(body) => body,
        Err(e) => panic!("evaluation failed: {e}"),
    }
}

/// The validation errors of a job expected to be invalid.
fn invalid(src: &str, opts: &ParseOptions) -> Vec<ValidationError> {
    match run(src, opts) {
        Ok(body) => panic!("expected errors, got {body:?}"),
        Err(Error::Invalid(errors)) => errors.0,
        Err(other) => panic!("expected validation errors, got {other}"),
    }
}

/// The one validation error of a job expected to be invalid.
fn one_error(src: &str, opts: &ParseOptions) -> ValidationError {
    let mut errors = invalid(src, opts);
    assert_eq!(
        errors.len(),
        1,
        "expected exactly one error, got {errors:?}"
    );
    errors.remove(0)
}

/// The value of a top-level attribute of an evaluated body.
fn attr(body: &Body, name: &str) -> Value {
    body.attributes()
        .find(|a| a.key() == name)
        .map(|a| Value::from(a.expr().clone()))
        .unwrap_or_else(|| panic!("no attribute {name} in {body:?}"))
}

/// Evaluates `x = <expr>` with `opts` and returns the value of `x`.
fn eval_with(expr: &str, opts: &ParseOptions) -> Value {
    attr(&ok(&format!("x = {expr}\n"), opts), "x")
}

fn eval_expr(expr: &str) -> Value {
    eval_with(expr, &ParseOptions::default())
}

/// The error message of evaluating `x = <expr>`.
fn expr_error(expr: &str) -> String {
    let e = one_error(&format!("x = {expr}\n"), &ParseOptions::default());
    e.message
}

fn json(v: serde_json::Value) -> Value {
    serde_json::from_value(v).expect("a JSON value converts to an HCL value")
}

fn s(text: &str) -> Value {
    Value::String(text.to_string())
}

fn with_vars(pairs: &[(&str, &str)]) -> ParseOptions {
    ParseOptions {
        vars: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..ParseOptions::default()
    }
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/eval")
}

// -- parsing ---------------------------------------------------------------------------------

#[test]
fn malformed_text_is_a_syntax_error_naming_the_file() {
    match run("job \"x\" {\n  a = [1,\n}\n", &ParseOptions::default()) {
        Err(Error::Syntax { file, message }) => {
            assert_eq!(file, "job.nomad.hcl");
            assert!(message.contains("line 3, column 1"), "{message}");
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

#[test]
fn variable_and_locals_blocks_are_removed_and_the_rest_kept_in_order() {
    let body = ok(
        r#"
variable "dc" {
  default = "dc1"
}
locals {
  region = "global"
}
job "web" {
  datacenters = [var.dc]
  region      = local.region
}
"#,
        &ParseOptions::default(),
    );
    let expected = hcl::parse(
        r#"
job "web" {
  datacenters = ["dc1"]
  region      = "global"
}
"#,
    )
    .unwrap();
    assert_eq!(body, expected);
}

// -- variables -------------------------------------------------------------------------------

const IMAGE_JOB: &str = r#"
variable "image" {
  type    = string
  default = "from-default"
}
image = var.image
"#;

#[test]
fn variable_default_is_used_when_nothing_else_is_set() {
    let body = ok(IMAGE_JOB, &ParseOptions::default());
    assert_eq!(attr(&body, "image"), s("from-default"));
}

#[test]
fn value_sources_apply_in_precedence_order() {
    let mut opts = ParseOptions::default();
    opts.env
        .insert("NOMAD_VAR_image".to_string(), "from-env".to_string());
    assert_eq!(attr(&ok(IMAGE_JOB, &opts), "image"), s("from-env"));

    opts.var_files.push((
        "first.hcl".to_string(),
        "image = \"from-first-file\"\n".to_string(),
    ));
    assert_eq!(attr(&ok(IMAGE_JOB, &opts), "image"), s("from-first-file"));

    opts.var_files.push((
        "second.json".to_string(),
        r#"{"image": "from-second-file"}"#.to_string(),
    ));
    assert_eq!(attr(&ok(IMAGE_JOB, &opts), "image"), s("from-second-file"));

    opts.vars
        .push(("image".to_string(), "from-first-var".to_string()));
    assert_eq!(attr(&ok(IMAGE_JOB, &opts), "image"), s("from-first-var"));

    opts.vars
        .push(("image".to_string(), "from-last-var".to_string()));
    assert_eq!(attr(&ok(IMAGE_JOB, &opts), "image"), s("from-last-var"));
}

#[test]
fn var_values_are_converted_to_the_declared_type() {
    let src = r#"
variable "count" { type = number }
variable "enabled" { type = bool }
variable "tags" { type = list(string) }
variable "ports" { type = map(number) }
variable "name" { type = string }
variable "svc" {
  type = object({ name = string, port = number, tags = optional(list(string)) })
}
count   = var.count
enabled = var.enabled
tags    = var.tags
ports   = var.ports
name    = var.name
svc     = var.svc
"#;
    let mut opts = with_vars(&[
        ("count", "2 * 2 - 1"),
        ("tags", r#"["a", 1]"#),
        ("name", "12"),
        ("svc", r#"{ name = "web", port = "8080", extra = true }"#),
    ]);
    opts.env
        .insert("NOMAD_VAR_enabled".to_string(), "true".to_string());
    opts.var_files.push((
        "v.json".to_string(),
        r#"{"ports": {"http": "80"}}"#.to_string(),
    ));
    let body = ok(src, &opts);
    assert_eq!(attr(&body, "count"), json(serde_json::json!(3)));
    assert_eq!(attr(&body, "enabled"), Value::Bool(true));
    assert_eq!(attr(&body, "tags"), json(serde_json::json!(["a", "1"])));
    assert_eq!(attr(&body, "ports"), json(serde_json::json!({"http": 80})));
    assert_eq!(attr(&body, "name"), s("12"));
    assert_eq!(
        attr(&body, "svc"),
        json(serde_json::json!({"name": "web", "port": 8080, "tags": null}))
    );
}

#[test]
fn a_value_of_the_wrong_type_names_the_variable_and_the_source() {
    let src = "variable \"count\" { type = number }\ncount = var.count\n";
    let e = one_error(src, &with_vars(&[("count", "three")]));
    assert_eq!(e.path, "variable \"count\"");
    assert_eq!(
        e.message,
        "invalid value from -var for type number: a number is required, got string \"three\""
    );

    let src = "variable \"svc\" { type = object({ port = number }) }\nx = var.svc\n";
    let mut opts = ParseOptions::default();
    opts.var_files.push((
        "prod.hcl".to_string(),
        "svc = { name = \"x\" }\n".to_string(),
    ));
    let e = one_error(src, &opts);
    assert_eq!(e.path, "variable \"svc\"");
    assert_eq!(
        e.message,
        "invalid value from var file \"prod.hcl\" for type object({port = number}): \
         attribute \"port\" is required"
    );
}

#[test]
fn a_default_that_does_not_match_the_type_is_an_error() {
    let e = one_error(
        "variable \"n\" {\n  type = list(number)\n  default = [\"x\"]\n}\n",
        &ParseOptions::default(),
    );
    assert_eq!(e.path, "variable \"n\"");
    assert_eq!(
        e.message,
        "the default value is not a valid list(number): element 0: a number is required, \
         got string \"x\""
    );
}

#[test]
fn a_required_variable_without_a_value_is_an_error() {
    let e = one_error(
        "variable \"image\" { type = string }\nimage = var.image\n",
        &ParseOptions::default(),
    );
    assert_eq!(e.path, "variable \"image\"");
    assert_eq!(
        e.message,
        "variable \"image\" is required but has no value; set it with -var, -var-file or \
         NOMAD_VAR_image"
    );
}

#[test]
fn undeclared_var_and_var_file_values_are_errors() {
    let e = one_error("x = 1\n", &with_vars(&[("nope", "1")]));
    assert_eq!(e.path, "variable \"nope\"");
    assert!(e
        .message
        .starts_with("-var sets variable \"nope\", which the job does not declare"));

    let mut opts = ParseOptions::default();
    opts.var_files
        .push(("extra.hcl".to_string(), "other = 1\n".to_string()));
    let e = one_error("x = 1\n", &opts);
    assert_eq!(e.path, "variable \"other\"");
    assert!(e.message.starts_with(
        "var file \"extra.hcl\" sets variable \"other\", which the job does not declare"
    ));
}

#[test]
fn environment_values_for_undeclared_variables_are_ignored() {
    let mut opts = ParseOptions::default();
    opts.env
        .insert("NOMAD_VAR_unrelated".to_string(), "1".to_string());
    assert_eq!(eval_with("1", &opts), json(serde_json::json!(1)));
}

#[test]
fn a_malformed_var_file_or_complex_var_is_a_syntax_error() {
    let src = "variable \"l\" { type = list(string) }\nx = var.l\n";
    match run(src, &with_vars(&[("l", "[\"a\",")])) {
        Err(Error::Syntax { file, .. }) => assert_eq!(file, "-var"),
        other => panic!("expected a syntax error, got {other:?}"),
    }
    let mut opts = ParseOptions::default();
    opts.var_files
        .push(("broken.json".to_string(), "{\"l\": ".to_string()));
    match run(src, &opts) {
        Err(Error::Syntax { file, .. }) => assert_eq!(file, "broken.json"),
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

#[test]
fn a_failed_validation_reports_its_error_message() {
    let src = r#"
variable "count" {
  type    = number
  default = 1
  validation {
    condition     = var.count > 0 && var.count < 10
    error_message = "count must be between 1 and 9, not ${var.count}."
  }
}
x = var.count
"#;
    assert_eq!(
        attr(&ok(src, &ParseOptions::default()), "x"),
        json(serde_json::json!(1))
    );
    let e = one_error(src, &with_vars(&[("count", "12")]));
    assert_eq!(e.path, "variable \"count\"");
    assert_eq!(e.message, "count must be between 1 and 9, not 12.");
}

#[test]
fn a_variables_block_declares_untyped_variables_with_defaults() {
    let src = "variables {\n  a = \"one\"\n  b = 2\n}\nx = \"${var.a}-${var.b}\"\n";
    assert_eq!(attr(&ok(src, &ParseOptions::default()), "x"), s("one-2"));
    assert_eq!(attr(&ok(src, &with_vars(&[("b", "9")])), "x"), s("one-9"));
}

#[test]
fn variable_blocks_reject_unknown_arguments_and_duplicates() {
    let e = one_error(
        "variable \"a\" {\n  defualt = 1\n}\n",
        &ParseOptions::default(),
    );
    assert_eq!(e.path, "variable \"a\"");
    assert_eq!(e.message, "unsupported argument \"defualt\"");
    let e = one_error(
        "variable \"a\" { default = 1 }\nvariable \"a\" { default = 2 }\n",
        &ParseOptions::default(),
    );
    assert_eq!(e.message, "variable \"a\" is declared more than once");
}

#[test]
fn defaults_and_var_files_cannot_refer_to_variables() {
    let e = one_error(
        "variable \"a\" { default = 1 }\nvariable \"b\" { default = var.a }\n",
        &ParseOptions::default(),
    );
    assert_eq!(e.path, "variable \"b\"");
    assert_eq!(e.message, "default: variables cannot be used here");
}

// -- locals ----------------------------------------------------------------------------------

#[test]
fn locals_refer_to_variables_and_other_locals_in_any_order() {
    let src = r#"
locals {
  url = "${local.scheme}://${var.host}:${local.port}"
}
variable "host" { default = "db" }
locals {
  scheme = "http"
  port   = 1000 + 80
}
url = local.url
"#;
    assert_eq!(
        attr(&ok(src, &ParseOptions::default()), "url"),
        s("http://db:1080")
    );
}

#[test]
fn a_cycle_between_locals_is_reported_once() {
    let src = "locals {\n  a = local.b\n  b = \"${local.c}x\"\n  c = local.a\n}\nx = 1\n";
    let e = one_error(src, &ParseOptions::default());
    assert_eq!(e.path, "locals");
    assert_eq!(e.message, "local.c: cycle between locals: a -> b -> c -> a");

    let e = one_error("locals {\n  a = local.a + 1\n}\n", &ParseOptions::default());
    assert_eq!(e.message, "local.a: cycle between locals: a -> a");
}

#[test]
fn a_broken_local_is_reported_at_the_local_itself() {
    let src = "locals {\n  a = local.b\n  b = 1 / 0\n}\n";
    let e = one_error(src, &ParseOptions::default());
    assert_eq!(e.path, "locals");
    assert_eq!(e.message, "local.b: division by zero");
}

#[test]
fn references_to_undeclared_variables_and_locals_name_them_and_their_block() {
    let src = r#"
job "web" {
  group "app" {
    count = var.nope
  }
}
"#;
    let e = one_error(src, &ParseOptions::default());
    assert_eq!(e.path, "job \"web\" group \"app\"");
    assert!(
        e.message
            .starts_with("count: reference to undeclared variable \"nope\" (var.nope)"),
        "{}",
        e.message
    );

    let e = one_error(
        "job \"web\" {\n  x = local.nope\n}\n",
        &ParseOptions::default(),
    );
    assert_eq!(e.path, "job \"web\"");
    assert_eq!(
        e.message,
        "x: reference to undeclared local value \"nope\" (local.nope)"
    );
}

#[test]
fn every_bad_attribute_is_reported() {
    let errors = invalid(
        "job \"a\" {\n  x = var.one\n  y = var.two\n}\n",
        &ParseOptions::default(),
    );
    assert_eq!(errors.len(), 2);
    assert!(errors[0].message.contains("var.one"));
    assert!(errors[1].message.contains("var.two"));
}

// -- runtime interpolations ------------------------------------------------------------------

#[test]
fn runtime_interpolations_stay_verbatim() {
    for text in [
        "${NOMAD_ADDR_db}",
        "${NOMAD_UPSTREAM_ADDR_x}",
        "${attr.kernel.name}",
        "${meta.rack}",
        "${node.datacenter}",
        "${node.unique.name}",
        "${env[\"X\"]}",
        "${device.model}",
        "${NOMAD_TASK_DIR}",
        "${attr.unique.network.ip-address}",
    ] {
        let quoted = format!("\"{text}\"");
        assert_eq!(eval_expr(&quoted), s(text), "for {quoted}");
    }
}

#[test]
fn known_parts_around_runtime_interpolations_are_evaluated() {
    let src = r#"
variable "dir" { default = "/opt" }
path = "${var.dir}/bin:${NOMAD_TASK_DIR}"
args = ["--bind", "${NOMAD_ADDR_rpc}", "--logs=${NOMAD_ALLOC_DIR}/logs/${upper("x")}"]
env  = { DC = "Running on datacenter ${node.datacenter} in ${var.dir}" }
"#;
    let body = ok(src, &ParseOptions::default());
    assert_eq!(attr(&body, "path"), s("/opt/bin:${NOMAD_TASK_DIR}"));
    assert_eq!(
        attr(&body, "args"),
        json(serde_json::json!([
            "--bind",
            "${NOMAD_ADDR_rpc}",
            "--logs=${NOMAD_ALLOC_DIR}/logs/X"
        ]))
    );
    assert_eq!(
        attr(&body, "env"),
        json(serde_json::json!({"DC": "Running on datacenter ${node.datacenter} in /opt"}))
    );
}

#[test]
fn a_bare_runtime_reference_becomes_an_interpolation_string() {
    let src = r#"
constraint {
  attribute = attr.kernel.name
  value     = "linux"
}
constraint {
  attribute = meta["rack"]
  value     = NOMAD_META_rack
}
"#;
    let expected = hcl::parse(
        r#"
constraint {
  attribute = "$${attr.kernel.name}"
  value     = "linux"
}
constraint {
  attribute = "$${meta[\"rack\"]}"
  value     = "$${NOMAD_META_rack}"
}
"#,
    )
    .unwrap();
    assert_eq!(ok(src, &ParseOptions::default()), expected);
}

#[test]
fn runtime_references_behave_as_their_text_in_functions() {
    assert_eq!(
        eval_expr(r#"join(":", [NOMAD_ALLOC_DIR, "x"])"#),
        s("${NOMAD_ALLOC_DIR}:x")
    );
}

#[test]
fn escaped_interpolations_come_out_as_literal_text() {
    let src = r#"
variable "v" { default = "known" }
plain    = "$${x}"
mixed    = "${var.v} and $${NOMAD_X} and %%{ if }"
heredoc  = <<EOT
$${y} ${var.v}
EOT
"#;
    let body = ok(src, &ParseOptions::default());
    assert_eq!(attr(&body, "plain"), s("${x}"));
    assert_eq!(attr(&body, "mixed"), s("known and ${NOMAD_X} and %{ if }"));
    assert_eq!(attr(&body, "heredoc"), s("${y} known\n"));
}

// -- templates -------------------------------------------------------------------------------

#[test]
fn a_lone_interpolation_keeps_its_type() {
    let src = "variable \"n\" { default = 3 }\na = \"${var.n}\"\nb = \"n=${var.n}\"\n";
    let body = ok(src, &ParseOptions::default());
    assert_eq!(attr(&body, "a"), json(serde_json::json!(3)));
    assert_eq!(attr(&body, "b"), s("n=3"));
}

#[test]
fn heredocs_are_evaluated_and_indented_heredocs_dedented() {
    let src = r#"
variable "items" { default = ["a", "b"] }
plain = <<EOT
  keep ${var.items[0]}
EOT
indented = <<-EOT
    first
      second ${length(var.items)}
    EOT
directives = <<-EOT
    %{ for s in var.items ~}
    item ${s}
    %{ endfor ~}
    done
    EOT
"#;
    let body = ok(src, &ParseOptions::default());
    assert_eq!(attr(&body, "plain"), s("  keep a\n"));
    assert_eq!(attr(&body, "indented"), s("first\n  second 2\n"));
    assert_eq!(attr(&body, "directives"), s("item a\nitem b\ndone\n"));
}

#[test]
fn template_directives_and_strip_markers() {
    assert_eq!(
        eval_expr(r#""%{ if true }yes%{ else }no%{ endif }""#),
        s("yes")
    );
    assert_eq!(
        eval_expr(r#""a %{~ if false }x%{ else ~} b %{~ endif ~} c""#),
        s("abc")
    );
    assert_eq!(
        eval_expr(r#""%{ for k, v in { b = 2, a = 1 } }${k}=${v};%{ endfor }""#),
        s("a=1;b=2;")
    );
    assert_eq!(eval_expr(r#""x ${ "y" ~}   z""#), s("x yz"));
}

#[test]
fn escape_sequences_in_templates_are_decoded_once() {
    let src = r#"
variable "v" { default = "known" }
path  = "C:\\dir\\${var.v}"
tab   = "a\t${var.v}"
quote = "say \"${var.v}\""
accent = "\u00e9${var.v}"
nested = "${"inner ${var.v}"}!"
"#;
    let body = ok(src, &ParseOptions::default());
    assert_eq!(attr(&body, "path"), s("C:\\dir\\known"));
    assert_eq!(attr(&body, "tab"), s("a\tknown"));
    assert_eq!(attr(&body, "quote"), s("say \"known\""));
    assert_eq!(attr(&body, "accent"), s("éknown"));
    assert_eq!(attr(&body, "nested"), s("inner known!"));
}

#[test]
fn a_realistic_job_file() {
    let src = r#"
variable "datacenters" {
  type    = list(string)
  default = ["dc1"]
}
variable "image" {
  type = string
}
variable "replicas" {
  type    = number
  default = 2
}
locals {
  name   = "web-${replace(var.image, "/[:/]/", "-")}"
  labels = { app = local.name, tier = "frontend" }
}
job "web" {
  datacenters = var.datacenters
  constraint {
    attribute = "${attr.kernel.name}"
    value     = "linux"
  }
  group "app" {
    count = var.replicas * 2
    network {
      port "http" { to = 8080 }
    }
    task "server" {
      driver = "docker"
      config {
        image = var.image
        args  = ["-listen", "${NOMAD_ADDR_http}", "-name", local.name]
        labels = local.labels
      }
      env {
        DC = "${node.datacenter}"
      }
      template {
        destination = "local/app.env"
        data        = <<-EOF
          NAME=${local.name}
          ADDR={{ env "NOMAD_ADDR_http" }}
          DIR=$${NOMAD_TASK_DIR}
        EOF
      }
    }
  }
}
"#;
    let mut opts = with_vars(&[("image", "nginx:1.25")]);
    opts.env
        .insert("NOMAD_VAR_replicas".to_string(), "3".to_string());
    let expected = hcl::parse(
        r#"
job "web" {
  datacenters = ["dc1"]
  constraint {
    attribute = "$${attr.kernel.name}"
    value     = "linux"
  }
  group "app" {
    count = 6
    network {
      port "http" { to = 8080 }
    }
    task "server" {
      driver = "docker"
      config {
        image  = "nginx:1.25"
        args   = ["-listen", "$${NOMAD_ADDR_http}", "-name", "web-nginx-1.25"]
        labels = { "app" = "web-nginx-1.25", "tier" = "frontend" }
      }
      env {
        DC = "$${node.datacenter}"
      }
      template {
        destination = "local/app.env"
        data        = "NAME=web-nginx-1.25\nADDR={{ env \"NOMAD_ADDR_http\" }}\nDIR=$${NOMAD_TASK_DIR}\n"
      }
    }
  }
}
"#,
    )
    .unwrap();
    assert_eq!(ok(src, &opts), expected);
}

#[test]
fn doubled_markers_after_a_dollar_or_percent_stay_escaped() {
    let cases = [
        (
            r#""${NOMAD_ALLOC_DIR}$${ $$${x}""#,
            "${NOMAD_ALLOC_DIR}${ $${x}",
        ),
        (
            r#""${NOMAD_ALLOC_DIR}%%{ %%%{x}""#,
            "${NOMAD_ALLOC_DIR}%{ %%{x}",
        ),
        (
            r#""${NOMAD_ALLOC_DIR}$${ %$${1 + 1}""#,
            "${NOMAD_ALLOC_DIR}${ %${1 + 1}",
        ),
        (
            "<<EOT\nrate: $${ 100%$${1 + 1}\nEOT",
            "rate: ${ 100%${1 + 1}\n",
        ),
        ("<<-EOT\n  a $$${b}\n  EOT", "a $${b}\n"),
        (r#""$$${x}""#, "$${x}"),
    ];
    for (written, want) in cases {
        assert_eq!(eval_expr(written), s(want), "{written}");
    }
}

#[test]
fn interpolating_a_list_is_an_error() {
    assert_eq!(
        expr_error(r#""a${[1]}""#),
        "x: cannot include a list in a string template; use jsonencode or join to make a string"
    );
}

// -- expressions -----------------------------------------------------------------------------

#[test]
fn arithmetic_comparison_and_logic() {
    assert_eq!(eval_expr("1 + 2 * 3 - 4 / 2"), json(serde_json::json!(5)));
    assert_eq!(eval_expr("7 % 3"), json(serde_json::json!(1)));
    assert_eq!(eval_expr("5 / 2"), json(serde_json::json!(2.5)));
    assert_eq!(eval_expr("\"3\" + 1"), json(serde_json::json!(4)));
    assert_eq!(eval_expr("-(2)"), json(serde_json::json!(-2)));
    assert_eq!(eval_expr("1 < 2 && !(2 >= 3) || false"), Value::Bool(true));
    assert_eq!(eval_expr("1 == 1.0"), Value::Bool(true));
    assert_eq!(eval_expr("1 == \"1\""), Value::Bool(false));
    assert_eq!(eval_expr("[1, \"a\"] != [1, \"a\"]"), Value::Bool(false));
    assert_eq!(
        eval_expr("9223372036854775807 + 1"),
        json(serde_json::json!(9223372036854775808u64))
    );
    assert_eq!(expr_error("1 / 0"), "x: division by zero");
    assert_eq!(expr_error("1 % 0"), "x: modulo by zero");
    assert_eq!(
        expr_error("1 + [1]"),
        "x: the operands of + must be numbers, got list of 1 elements"
    );
}

#[test]
fn conditionals_evaluate_only_the_chosen_branch() {
    assert_eq!(eval_expr("true ? \"a\" : 1 / 0"), s("a"));
    assert_eq!(eval_expr("false && (1 / 0 == 1)"), Value::Bool(false));
    assert_eq!(
        expr_error("1 ? 2 : 3"),
        "x: the condition of a conditional must be a bool, got number 1"
    );
}

#[test]
fn for_expressions_and_splats() {
    assert_eq!(
        eval_expr("[for s in [\"a\", \"b\", \"c\"] : upper(s) if s != \"b\"]"),
        json(serde_json::json!(["A", "C"]))
    );
    assert_eq!(
        eval_expr("{ for i, s in [\"a\", \"b\"] : s => i }"),
        json(serde_json::json!({"a": 0, "b": 1}))
    );
    assert_eq!(
        eval_expr("{ for s in [\"ab\", \"ac\", \"b\"] : substr(s, 0, 1) => s... }"),
        json(serde_json::json!({"a": ["ab", "ac"], "b": ["b"]}))
    );
    assert_eq!(
        eval_expr("[{ n = 1 }, { n = 2 }][*].n"),
        json(serde_json::json!([1, 2]))
    );
    assert_eq!(
        eval_expr("[{ n = { m = 1 } }, { n = { m = 2 } }].*.n.m"),
        json(serde_json::json!([1, 2]))
    );
    assert_eq!(
        eval_expr("{ a = [10, 20] }.a.1"),
        json(serde_json::json!(20))
    );
    assert_eq!(
        expr_error("{ for s in [\"a\", \"a\"] : s => 1 }"),
        "x: duplicate key \"a\" in a for expression; add ... after the value to group values by key"
    );
    assert_eq!(
        expr_error("[1, 2][5]"),
        "x: index 5 is out of range for a list of 2 elements"
    );
}

// -- dynamic blocks --------------------------------------------------------------------------

#[test]
fn dynamic_blocks_expand_with_iterator_and_labels() {
    let src = r#"
variable "ports" { default = ["http", "grpc"] }
job "web" {
  group "app" {
    network {
      dynamic "port" {
        for_each = var.ports
        iterator = p
        labels   = [p.value]
        content {
          to = 8080 + p.key
        }
      }
    }
    dynamic "volume" {
      for_each = { data = "/srv", logs = "/var/log" }
      labels   = [volume.key]
      content {
        source = volume.value
        dynamic "mount_options" {
          for_each = [volume.key]
          content {
            fs_type = "${mount_options.value}-fs"
          }
        }
      }
    }
  }
}
"#;
    let expected = hcl::parse(
        r#"
job "web" {
  group "app" {
    network {
      port "http" {
        to = 8080
      }
      port "grpc" {
        to = 8081
      }
    }
    volume "data" {
      source = "/srv"
      mount_options {
        fs_type = "data-fs"
      }
    }
    volume "logs" {
      source = "/var/log"
      mount_options {
        fs_type = "logs-fs"
      }
    }
  }
}
"#,
    )
    .unwrap();
    assert_eq!(ok(src, &ParseOptions::default()), expected);
}

#[test]
fn a_dynamic_block_without_content_is_an_error() {
    let e = one_error(
        "job \"a\" {\n  dynamic \"port\" {\n    for_each = [1]\n  }\n}\n",
        &ParseOptions::default(),
    );
    assert_eq!(e.path, "job \"a\" dynamic \"port\"");
    assert_eq!(
        e.message,
        "a dynamic block needs for_each and a content block"
    );
}

// -- functions -------------------------------------------------------------------------------

#[test]
fn numeric_functions() {
    let cases = [
        ("abs(-12.5)", serde_json::json!(12.5)),
        ("ceil(1.2)", serde_json::json!(2)),
        ("floor(-1.2)", serde_json::json!(-2)),
        ("log(16, 2)", serde_json::json!(4)),
        ("max(3, 12, 9)", serde_json::json!(12)),
        ("min([3, 1]...)", serde_json::json!(1)),
        ("parseint(\"ff\", 16)", serde_json::json!(255)),
        ("parseint(\"-101\", 2)", serde_json::json!(-5)),
        ("pow(2, 10)", serde_json::json!(1024)),
        ("pow(4, 0.5)", serde_json::json!(2)),
        ("signum(-7)", serde_json::json!(-1)),
    ];
    for (expr, want) in cases {
        assert_eq!(eval_expr(expr), json(want), "{expr}");
    }
}

#[test]
fn string_functions() {
    let cases = [
        ("chomp(\"hello\\n\\n\")", serde_json::json!("hello")),
        (
            "format(\"%s-%03d-%.2f-%t-%x\", \"a\", 7, 3.14159, true, 255)",
            serde_json::json!("a-007-3.14-true-ff"),
        ),
        (
            "format(\"%-5s|%5s|%v|%q\", \"ab\", \"cd\", [1], \"q\")",
            serde_json::json!("ab   |   cd|[1]|\"q\""),
        ),
        (
            "format(\"%e %g %g\", 1234.5, 0.0001, 1e7)",
            serde_json::json!("1.234500e+03 0.0001 1e+07"),
        ),
        (
            "formatlist(\"%s=%s\", [\"a\", \"b\"], \"v\")",
            serde_json::json!(["a=v", "b=v"]),
        ),
        ("indent(2, \"a\\nb\")", serde_json::json!("a\n  b")),
        (
            "join(\", \", [\"a\", \"b\"], [\"c\"])",
            serde_json::json!("a, b, c"),
        ),
        ("lower(\"ABC\")", serde_json::json!("abc")),
        ("upper(\"abc\")", serde_json::json!("ABC")),
        ("regex(\"[a-z]+\", \"53abc\")", serde_json::json!("abc")),
        (
            "regex(\"(\\\\d+)-(\\\\d+)\", \"10-20\")",
            serde_json::json!(["10", "20"]),
        ),
        (
            "regex(\"(?P<k>\\\\w+)=(?P<v>\\\\w+)\", \"a=b\")",
            serde_json::json!({"k": "a", "v": "b"}),
        ),
        (
            "regexall(\"\\\\d\", \"a1b2\")",
            serde_json::json!(["1", "2"]),
        ),
        (
            "replace(\"1 + 2 + 3\", \"+\", \"-\")",
            serde_json::json!("1 - 2 - 3"),
        ),
        (
            "replace(\"hello world\", \"/w(or)ld/\", \"$1\")",
            serde_json::json!("hello or"),
        ),
        (
            "regex_replace(\"-ab-axxb-\", \"a(x*)b\", \"$${1}W\")",
            serde_json::json!("-W-xxW-"),
        ),
        (
            "split(\",\", \"a,b,,c\")",
            serde_json::json!(["a", "b", "", "c"]),
        ),
        ("strrev(\"abc\")", serde_json::json!("cba")),
        ("substr(\"hello world\", 1, 4)", serde_json::json!("ello")),
        ("substr(\"hello\", -3, -1)", serde_json::json!("llo")),
        (
            "title(\"hello world-wide\")",
            serde_json::json!("Hello World-Wide"),
        ),
        ("trim(\"?!hello?!\", \"!?\")", serde_json::json!("hello")),
        (
            "trimprefix(\"helloworld\", \"hello\")",
            serde_json::json!("world"),
        ),
        (
            "trimsuffix(\"helloworld\", \"world\")",
            serde_json::json!("hello"),
        ),
        ("trimspace(\"  x \\n\")", serde_json::json!("x")),
    ];
    for (expr, want) in cases {
        assert_eq!(eval_expr(expr), json(want), "{expr}");
    }
}

#[test]
fn collection_functions() {
    let cases = [
        ("alltrue([true, \"true\"])", serde_json::json!(true)),
        ("anytrue([false, false])", serde_json::json!(false)),
        (
            "chunklist([1, 2, 3, 4, 5], 2)",
            serde_json::json!([[1, 2], [3, 4], [5]]),
        ),
        ("coalesce(null, \"\", \"b\")", serde_json::json!("b")),
        ("coalescelist([], [\"a\"])", serde_json::json!(["a"])),
        (
            "compact([\"a\", \"\", null, \"b\"])",
            serde_json::json!(["a", "b"]),
        ),
        ("concat([1], [2, 3])", serde_json::json!([1, 2, 3])),
        ("contains([\"a\", \"b\"], \"b\")", serde_json::json!(true)),
        (
            "distinct([\"a\", \"b\", \"a\"])",
            serde_json::json!(["a", "b"]),
        ),
        ("element([\"a\", \"b\"], 3)", serde_json::json!("b")),
        ("flatten([[1, [2]], [], 3])", serde_json::json!([1, 2, 3])),
        ("index([\"a\", \"b\"], \"b\")", serde_json::json!(1)),
        ("keys({ b = 1, a = 2 })", serde_json::json!(["a", "b"])),
        ("values({ b = 1, a = 2 })", serde_json::json!([2, 1])),
        ("length(\"héllo\")", serde_json::json!(5)),
        ("length({ a = 1 })", serde_json::json!(1)),
        ("lookup({ a = 1 }, \"b\", 7)", serde_json::json!(7)),
        (
            "merge({ a = 1, b = 2 }, null, { b = 3 })",
            serde_json::json!({"a": 1, "b": 3}),
        ),
        ("range(3)", serde_json::json!([0, 1, 2])),
        ("range(1, 2, 0.5)", serde_json::json!([1, 1.5])),
        ("range(3, 0)", serde_json::json!([3, 2, 1])),
        ("reverse([1, 2])", serde_json::json!([2, 1])),
        (
            "setintersection([\"a\", \"b\"], [\"b\", \"c\"])",
            serde_json::json!(["b"]),
        ),
        (
            "setproduct([\"x\", \"y\"], [1, 2])",
            serde_json::json!([["x", 1], ["x", 2], ["y", 1], ["y", 2]]),
        ),
        (
            "setsubtract([\"c\", \"a\", \"b\"], [\"b\"])",
            serde_json::json!(["a", "c"]),
        ),
        (
            "setunion([\"b\"], [\"a\", \"b\"])",
            serde_json::json!(["a", "b"]),
        ),
        ("slice([1, 2, 3, 4], 1, 3)", serde_json::json!([2, 3])),
        (
            "sort([\"b\", \"c\", \"a\"])",
            serde_json::json!(["a", "b", "c"]),
        ),
        ("sum([1, 2.5])", serde_json::json!(3.5)),
        (
            "transpose({ a = [\"1\", \"2\"], b = [\"2\"] })",
            serde_json::json!({"1": ["a"], "2": ["a", "b"]}),
        ),
        (
            "zipmap([\"a\", \"b\"], [1, 2])",
            serde_json::json!({"a": 1, "b": 2}),
        ),
    ];
    for (expr, want) in cases {
        assert_eq!(eval_expr(expr), json(want), "{expr}");
    }
}

#[test]
fn encoding_and_conversion_functions() {
    let cases = [
        ("base64encode(\"Hello!\")", serde_json::json!("SGVsbG8h")),
        ("base64decode(\"SGVsbG8=\")", serde_json::json!("Hello")),
        (
            "csvdecode(\"a,b\\n1,\\\"x,\\\"\\\"y\\\"\\\"\\\"\\n\")",
            serde_json::json!([{"a": "1", "b": "x,\"y\""}]),
        ),
        (
            "jsondecode(\"{\\\"a\\\": [1, true]}\")",
            serde_json::json!({"a": [1, true]}),
        ),
        (
            "jsonencode({ a = [1, \"b\"] })",
            serde_json::json!("{\"a\":[1,\"b\"]}"),
        ),
        (
            "urlencode(\"a b&c/é\")",
            serde_json::json!("a+b%26c%2F%C3%A9"),
        ),
        ("tobool(\"true\")", serde_json::json!(true)),
        ("tonumber(\"1.5\")", serde_json::json!(1.5)),
        ("tostring(12)", serde_json::json!("12")),
        (
            "toset([\"b\", \"a\", \"b\"])",
            serde_json::json!(["a", "b"]),
        ),
        ("tolist([1])", serde_json::json!([1])),
        ("tomap({ a = 1 })", serde_json::json!({"a": 1})),
        ("convert([\"1\"], list(number))", serde_json::json!([1])),
        ("can(tonumber(\"x\"))", serde_json::json!(false)),
        ("can(tonumber(\"1\"))", serde_json::json!(true)),
        (
            "try(tonumber(\"x\"), { a = 1 }.b, \"fallback\")",
            serde_json::json!("fallback"),
        ),
        (
            "cidrhost(\"10.12.112.0/20\", 16)",
            serde_json::json!("10.12.112.16"),
        ),
        (
            "cidrhost(\"10.12.112.0/20\", -1)",
            serde_json::json!("10.12.127.255"),
        ),
        (
            "cidrnetmask(\"172.16.0.0/12\")",
            serde_json::json!("255.240.0.0"),
        ),
        (
            "cidrsubnet(\"172.16.0.0/12\", 4, 2)",
            serde_json::json!("172.18.0.0/16"),
        ),
        (
            "cidrsubnet(\"fd00:fd12:3456:7890::/56\", 16, 162)",
            serde_json::json!("fd00:fd12:3456:7800:a200::/72"),
        ),
        (
            "cidrsubnets(\"10.1.0.0/16\", 4, 4, 8, 4)",
            serde_json::json!([
                "10.1.0.0/20",
                "10.1.16.0/20",
                "10.1.32.0/24",
                "10.1.48.0/20"
            ]),
        ),
    ];
    for (expr, want) in cases {
        assert_eq!(eval_expr(expr), json(want), "{expr}");
    }
}

#[test]
fn try_and_can_do_not_hide_mistakes_in_the_file() {
    let e = expr_error("try(var.nope, 1)");
    assert!(
        e.starts_with("x: reference to undeclared variable \"nope\""),
        "{e}"
    );
    assert_eq!(
        expr_error("can(md5(\"x\"))"),
        "x: function \"md5\" is not supported"
    );
}

#[test]
fn an_unknown_function_is_an_error() {
    assert_eq!(
        expr_error("md5(\"x\")"),
        "x: function \"md5\" is not supported"
    );
    assert_eq!(
        expr_error("provider::x::y(1)"),
        "x: function \"provider::x::y\" is not supported"
    );
}

#[test]
fn function_errors_name_the_function() {
    assert_eq!(
        expr_error("upper([1])"),
        "x: upper: argument 1 must be a string, got list of 1 elements"
    );
    assert_eq!(
        expr_error("regex(\"z\", \"abc\")"),
        "x: regex: the pattern did not match the string"
    );
    assert_eq!(
        expr_error("range(2000)"),
        "x: range: more than 1024 elements"
    );
    assert_eq!(
        expr_error("format(\"%d %d\", 1)"),
        "x: format: there are fewer arguments than verbs in the format string"
    );
}

#[test]
fn file_functions_read_relative_to_the_base_dir() {
    let opts = ParseOptions {
        base_dir: Some(fixtures()),
        ..ParseOptions::default()
    };
    assert_eq!(
        eval_with("file(\"greeting.txt\")", &opts),
        s("hello from a file\n")
    );
    assert_eq!(
        eval_with("fileexists(\"greeting.txt\")", &opts),
        Value::Bool(true)
    );
    assert_eq!(
        eval_with("fileexists(\"missing.txt\")", &opts),
        Value::Bool(false)
    );
    assert!(expr_error("file(\"greeting.txt\")").starts_with("x: file: files cannot be read here"));
    assert!(expr_error("fileexists(\"greeting.txt\")")
        .starts_with("x: fileexists: files cannot be read here"));
}

// -- hostile input ---------------------------------------------------------------------------

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    // Beyond what the parser accepts.
    let deep = format!("x = {}1{}\n", "[".repeat(100), "]".repeat(100));
    assert!(matches!(
        run(&deep, &ParseOptions::default()),
        Err(Error::Syntax { .. })
    ));

    // A long chain of locals, each referring to the next.
    let mut src = String::from("locals {\n");
    for i in 0..400 {
        src.push_str(&format!("  l{i} = [local.l{}]\n", i + 1));
    }
    src.push_str("  l400 = 1\n}\nx = local.l0\n");
    let errors = invalid(&src, &ParseOptions::default());
    assert!(
        errors.iter().all(|e| e.message.contains("nest too deeply")),
        "{errors:?}"
    );

    // A very long traversal.
    let long = format!("x = {{ a = 1 }}{}\n", ".a".repeat(50_000));
    assert!(run(&long, &ParseOptions::default()).is_err());
}

#[test]
fn evaluation_fits_in_a_small_thread_stack() {
    // The deepest input the parser accepts, evaluated on a 2 MiB stack.
    let handle = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let nested = format!("x = {}1{}\n", "[".repeat(62), "]".repeat(62));
            let chain = format!("y = {}\n", vec!["1"; 120].join(" + "));
            let mut locals = String::from("locals {\n");
            for i in 0..300 {
                locals.push_str(&format!("  l{i} = local.l{}\n", i + 1));
            }
            locals.push_str("  l300 = 1\n}\nz = local.l0\n");
            let a = run(&nested, &ParseOptions::default()).is_ok();
            let b = run(&chain, &ParseOptions::default()).is_ok();
            let c = run(&locals, &ParseOptions::default()).is_err();
            (a, b, c)
        })
        .expect("spawn a thread");
    assert_eq!(
        handle.join().expect("no stack overflow"),
        (true, true, true)
    );
}

#[test]
fn values_cannot_grow_without_bound() {
    // Each local doubles the one before it.
    let mut src = String::from("locals {\n  l0 = \"0123456789abcdef\"\n");
    for i in 1..40 {
        src.push_str(&format!(
            "  l{i} = \"${{local.l{0}}}${{local.l{0}}}\"\n",
            i - 1
        ));
    }
    src.push_str("}\n");
    let errors = invalid(&src, &ParseOptions::default());
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].message.contains("bytes"), "{errors:?}");

    let nested = "[for i in range(1024) : [for j in range(1024) : [j, j]]]";
    assert!(expr_error(nested).contains("too large"));
    assert!(expr_error("format(\"%99999999d\", 1)").contains("widths and precisions"));
    assert!(expr_error("setproduct(range(1024), range(1024), range(1024))").contains("too large"));
}
