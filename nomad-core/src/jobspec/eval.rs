//! HCL2 evaluation: variables, locals and functions, leaving runtime interpolations verbatim.
//!
//! A job file is parsed with `hcl-rs`'s `hcl-edit` parser; its templates are taken out of the
//! syntax tree as parsed (see [`Templates`]) and `<<-` heredocs are dedented the way HCL
//! specifies. Then:
//!
//! 1. top-level `variable`, `variables` and `locals` blocks are taken out; variables are bound
//!    from their default, `NOMAD_VAR_<name>`, var files and `-var` (lowest to highest), converted
//!    to their declared type and checked by their `validation` blocks; locals are evaluated in
//!    dependency order, with cycles reported;
//! 2. every other attribute is evaluated to a literal value, with `dynamic` blocks expanded;
//! 3. references whose root is neither `var`, `local`, nor a name bound by a `for` expression or
//!    a `dynamic` iterator (`NOMAD_ADDR_db`, `attr.kernel.name`, `meta.rack`, `env["X"]`, ...)
//!    are runtime interpolations: each evaluates to the text `${<reference>}`, so the client
//!    resolves it later. This is how Nomad itself treats them.
//!
//! The evaluator is our own rather than `hcl::eval`: that one has no partial evaluation, cannot
//! evaluate function arguments lazily (`try`, `can`), and its number arithmetic may panic on
//! overflow or division by zero. `hcl-rs` still provides the syntax tree, the template parser and
//! the value type.
//!
//! Nothing here panics on input: recursion is capped ([`MAX_DEPTH`]), values have a size budget
//! ([`MAX_SIZE`], [`MAX_STRING`]) so a few lines cannot ask for gigabytes, and every lookup into
//! data from the file is checked.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use hcl::edit::expr::Expression as EditExpression;
use hcl::edit::template::{HeredocTemplate, Template as EditTemplate};
use hcl::edit::visit_mut::{
    visit_expr_mut, visit_heredoc_template_mut, visit_string_template_mut, VisitMut,
};
use hcl::edit::{Decorated, Ident, Span};
use hcl::expr::{
    BinaryOperator, Conditional, Expression, ForExpr, FuncCall, ObjectKey, Operation, TemplateExpr,
    Traversal, TraversalOperator, UnaryOperator,
};
use hcl::template::{Directive, Element, Template};
use hcl::{Attribute, Block, BlockLabel, Body, Identifier, Map, Number, Structure, Value};

use super::ParseOptions;
use crate::{Error, ValidationErrors};

mod funcs;
#[cfg(test)]
mod tests;
mod types;

use types::{describe, size_of, to_bool, to_number, to_string, type_name, Type};

/// How deeply expression evaluation may recurse (expressions, templates, locals referring to
/// locals) before it stops with an error instead of risking the stack.
const MAX_DEPTH: usize = 160;

/// How deeply a variable's or a local's value may nest lists and objects.
const MAX_VALUE_DEPTH: usize = 160;

/// The largest value an expression may build, in the units of [`types::size_of`] (one per value,
/// one more per 16 bytes of string): a million values, or about 16 MiB of text.
const MAX_SIZE: usize = 1 << 20;

/// The longest string a template or function may build, in bytes.
const MAX_STRING: usize = 16 << 20;

/// Parses `src` (the job file named `filename`), binds its variables and locals from the file and
/// `opts`, and returns the rest of the body with every expression evaluated to a literal value.
///
/// Runtime interpolations (`${NOMAD_TASK_DIR}`, `${attr.kernel.name}`, ...) come out as the same
/// `${...}` text inside the resulting strings.
///
/// # Errors
///
/// [`Error::Syntax`] when the job file, a var file or a `-var` value is not well-formed;
/// [`Error::Invalid`] with every problem found otherwise: missing, undeclared or ill-typed
/// variables, failed validations, cycles between locals, references to undeclared variables or
/// locals, unsupported functions, and expressions that cannot be evaluated.
pub(crate) fn evaluate(src: &str, filename: &str, opts: &ParseOptions) -> Result<Body, Error> {
    let session = Session {
        opts,
        templates: Templates::default(),
    };
    let body = parse_source(src, filename, &session.templates)?;
    let decls = Declarations::collect(body, &session)?;
    let vars = bind_variables(&decls.variables, &session)?;
    let locals = LocalTable::new(decls.locals);
    let ev = Evaluator {
        vars: Some(&vars),
        locals: Some(&locals),
        session: &session,
        runtime_refs: true,
        depth: Cell::new(0),
    };
    let mut errors = ValidationErrors::new();
    ev.check_locals(&mut errors);
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    let out = ev.walk_body(Body(decls.rest), &Scope::Root, "", &mut errors);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(Error::Invalid(errors))
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// What one evaluation works with: the caller's options and the templates of every text parsed
/// for it (the job file, var files, `-var` values).
struct Session<'a> {
    opts: &'a ParseOptions,
    templates: Templates,
}

/// The templates (quoted strings with interpolations or directives, and heredocs) of the parsed
/// texts, each kept as the parser produced it.
///
/// `hcl-rs` turns a template back into text when it converts `hcl-edit`'s syntax tree, and its
/// encoder (`escape_markers` in `hcl-primitives` 0.1.13) drops the escaping of a `$${` or `%%{`
/// that follows another `$` or `%`, so the text no longer says what the file said. Instead, each
/// template is converted element by element and replaced in the tree by a placeholder name no
/// file can spell (it starts with NUL), which the evaluator looks up here.
#[derive(Default)]
struct Templates(RefCell<Vec<Rc<Template>>>);

/// The first character of a placeholder name standing for an entry of [`Templates`].
const TEMPLATE_MARK: char = '\u{0}';

impl Templates {
    fn add(&self, template: Template) -> String {
        let mut all = self.0.borrow_mut();
        all.push(Rc::new(template));
        format!("{TEMPLATE_MARK}{}", all.len() - 1)
    }

    /// The template a placeholder name stands for; `None` for any other name.
    fn get(&self, name: &str) -> Option<Rc<Template>> {
        let index: usize = name.strip_prefix(TEMPLATE_MARK)?.parse().ok()?;
        self.0.borrow().get(index).cloned()
    }
}

/// Parses HCL text into a body, taking its templates out into `templates`.
fn parse_source(src: &str, filename: &str, templates: &Templates) -> Result<Body, Error> {
    let syntax = |message: String| Error::Syntax {
        file: filename.to_string(),
        message: clean_parse_message(&message),
    };
    let mut body = hcl::edit::parser::parse_body(src).map_err(|e| syntax(e.to_string()))?;
    let mut lowering = TemplateLowering {
        src,
        templates,
        error: None,
    };
    lowering.visit_body_mut(&mut body);
    if let Some(message) = lowering.error {
        return Err(syntax(message));
    }
    Ok(Body::from(body))
}

/// Parses a `-var` or `NOMAD_VAR_` value of a list, map, object or tuple variable.
fn parse_expression(text: &str, source: &str, session: &Session<'_>) -> Result<Expression, Error> {
    let syntax = |message: String| Error::Syntax {
        file: source.to_string(),
        message: clean_parse_message(&message),
    };
    let mut expr = hcl::edit::parser::parse_expr(text).map_err(|e| syntax(e.to_string()))?;
    let mut lowering = TemplateLowering {
        src: text,
        templates: &session.templates,
        error: None,
    };
    lowering.visit_expr_mut(&mut expr);
    if let Some(message) = lowering.error {
        return Err(syntax(message));
    }
    Ok(Expression::from(expr))
}

fn clean_parse_message(message: &str) -> String {
    message.trim().trim_start_matches("--> ").to_string()
}

/// Replaces every template of an `hcl-edit` tree by a placeholder (see [`Templates`]), and
/// dedents `<<-` heredocs from their source text.
///
/// HCL removes the smallest indentation of all lines of an indented heredoc, including lines
/// inside `%{ for }` and `%{ if }` directives; the parser only looks at top-level lines. So the
/// raw text of each such heredoc is dedented here and parsed again.
struct TemplateLowering<'a> {
    /// The text the tree was parsed from, which its spans point into.
    src: &'a str,
    templates: &'a Templates,
    error: Option<String>,
}

impl TemplateLowering<'_> {
    /// The template of an indented heredoc, parsed again from its dedented source text, with its
    /// own nested templates lowered. `None` when the heredoc is not indented or its source text
    /// is not at hand.
    fn dedented(&mut self, node: &HeredocTemplate) -> Option<EditTemplate> {
        let indented = node
            .span()
            .and_then(|r| self.src.get(r))
            .is_some_and(|text| text.starts_with("<<-"));
        let raw = node.template.span().and_then(|r| self.src.get(r))?;
        if !indented {
            return None;
        }
        let text = dedent(raw);
        match hcl::edit::parser::parse_template(&text) {
            Ok(mut template) => {
                let mut inner = TemplateLowering {
                    src: &text,
                    templates: self.templates,
                    error: None,
                };
                inner.visit_template_mut(&mut template);
                if inner.error.is_some() {
                    self.error = inner.error;
                }
                Some(template)
            }
            Err(e) => {
                self.error = Some(e.to_string());
                None
            }
        }
    }
}

impl VisitMut for TemplateLowering<'_> {
    fn visit_expr_mut(&mut self, node: &mut EditExpression) {
        let template = match node {
            EditExpression::StringTemplate(t) => {
                visit_string_template_mut(self, t);
                std::mem::take(&mut **t)
            }
            EditExpression::HeredocTemplate(h) => match self.dedented(h) {
                Some(template) => template,
                None => {
                    visit_heredoc_template_mut(self, h);
                    std::mem::take(&mut h.template)
                }
            },
            _ => return visit_expr_mut(self, node),
        };
        let name = self.templates.add(Template::from(template));
        *node = EditExpression::Variable(Decorated::new(Ident::new_unchecked(name)));
    }
}

/// Removes the common leading whitespace of the lines of an indented heredoc's raw text.
///
/// Lines that are blank do not count; a line that starts with an interpolation or directive
/// right at its first column means nothing is removed. Lines that continue a `${ ... }` begun on
/// an earlier line are left alone.
fn dedent(raw: &str) -> String {
    struct Line<'a> {
        text: &'a str,
        counted: bool,
    }
    let mut lines = Vec::new();
    let mut scan = SequenceScan::default();
    let mut min: Option<usize> = None;
    for text in raw.split_inclusive('\n') {
        let counted = scan.depth == 0;
        if counted {
            let content = text.trim_start_matches([' ', '\t']);
            let lead = text.len() - content.len();
            let blank = content.trim_matches(['\r', '\n']).is_empty();
            let opens_sequence =
                (content.starts_with("${") || content.starts_with("%{")) && lead == 0;
            if opens_sequence {
                min = Some(0);
            } else if !blank {
                min = Some(min.map_or(lead, |m| m.min(lead)));
            }
        }
        scan.line(text);
        lines.push(Line { text, counted });
    }
    let strip = min.unwrap_or(0);
    let mut out = String::with_capacity(raw.len());
    for line in lines {
        if line.counted {
            let mut rest = line.text;
            for _ in 0..strip {
                match rest.strip_prefix([' ', '\t']) {
                    Some(r) => rest = r,
                    None => break,
                }
            }
            out.push_str(rest);
        } else {
            out.push_str(line.text);
        }
    }
    out
}

/// Tracks whether a heredoc line ends inside an unfinished `${ ... }` or `%{ ... }`.
#[derive(Default)]
struct SequenceScan {
    depth: usize,
    in_string: bool,
    escaped: bool,
}

impl SequenceScan {
    fn line(&mut self, text: &str) {
        let bytes = text.as_bytes();
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            let next = bytes.get(i + 1).copied();
            let after = bytes.get(i + 2).copied();
            if self.depth == 0 {
                if (b == b'$' || b == b'%') && next == Some(b) && after == Some(b'{') {
                    i += 3;
                    continue;
                }
                if (b == b'$' || b == b'%') && next == Some(b'{') {
                    self.depth = 1;
                    i += 2;
                    continue;
                }
            } else if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
            } else {
                match b {
                    b'"' => self.in_string = true,
                    b'{' => self.depth += 1,
                    b'}' => self.depth -= 1,
                    _ => {}
                }
            }
            i += 1;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Declarations: variable, variables and locals blocks
// ---------------------------------------------------------------------------------------------

/// A declared input variable.
struct VariableDecl {
    name: String,
    ty: Type,
    default: Option<Value>,
    validations: Vec<Validation>,
}

/// A `validation` block of a variable.
struct Validation {
    condition: Expression,
    error_message: Expression,
}

/// The top level of a job file, split into declarations and the rest.
struct Declarations {
    variables: Vec<VariableDecl>,
    locals: Vec<(String, Expression)>,
    rest: Vec<Structure>,
}

impl Declarations {
    fn collect(body: Body, session: &Session<'_>) -> Result<Declarations, Error> {
        let mut decls = Declarations {
            variables: Vec::new(),
            locals: Vec::new(),
            rest: Vec::new(),
        };
        let mut errors = ValidationErrors::new();
        for structure in body.into_inner() {
            match structure {
                Structure::Block(block) if block.identifier.as_str() == "variable" => {
                    match variable_block(block, session) {
                        Ok(decl) => decls.add_variable(decl, &mut errors),
                        Err((path, message)) => errors.push(path, message),
                    }
                }
                Structure::Block(block) if block.identifier.as_str() == "variables" => {
                    decls.variables_block(block, session, &mut errors);
                }
                Structure::Block(block) if block.identifier.as_str() == "locals" => {
                    decls.locals_block(block, &mut errors);
                }
                other => decls.rest.push(other),
            }
        }
        if errors.is_empty() {
            Ok(decls)
        } else {
            Err(Error::Invalid(errors))
        }
    }

    fn add_variable(&mut self, decl: VariableDecl, errors: &mut ValidationErrors) {
        if self.variables.iter().any(|v| v.name == decl.name) {
            errors.push(
                variable_path(&decl.name),
                format!("variable \"{}\" is declared more than once", decl.name),
            );
        } else {
            self.variables.push(decl);
        }
    }

    /// `variables { name = default ... }`: each attribute declares a variable of any type.
    fn variables_block(
        &mut self,
        block: Block,
        session: &Session<'_>,
        errors: &mut ValidationErrors,
    ) {
        if !block.labels.is_empty() {
            errors.push("variables", "a variables block takes no labels");
        }
        for structure in block.body.into_inner() {
            match structure {
                Structure::Attribute(attr) => {
                    let name = attr.key.as_str().to_string();
                    match const_eval(&attr.expr, session) {
                        Ok(value) => self.add_variable(
                            VariableDecl {
                                name,
                                ty: Type::Any,
                                default: Some(value),
                                validations: Vec::new(),
                            },
                            errors,
                        ),
                        Err(e) => errors.push(variable_path(&name), format!("default: {e}")),
                    }
                }
                Structure::Block(b) => errors.push(
                    "variables",
                    format!("unexpected block \"{}\" in a variables block", b.identifier),
                ),
            }
        }
    }

    fn locals_block(&mut self, block: Block, errors: &mut ValidationErrors) {
        if !block.labels.is_empty() {
            errors.push("locals", "a locals block takes no labels");
        }
        for structure in block.body.into_inner() {
            match structure {
                Structure::Attribute(attr) => {
                    let name = attr.key.as_str().to_string();
                    if self.locals.iter().any(|(n, _)| *n == name) {
                        errors.push(
                            "locals",
                            format!("local \"{name}\" is defined more than once"),
                        );
                    } else {
                        self.locals.push((name, attr.expr));
                    }
                }
                Structure::Block(b) => errors.push(
                    "locals",
                    format!("unexpected block \"{}\" in a locals block", b.identifier),
                ),
            }
        }
    }
}

fn variable_path(name: &str) -> String {
    format!("variable \"{name}\"")
}

/// Reads one `variable "name" { ... }` block.
fn variable_block(block: Block, session: &Session<'_>) -> Result<VariableDecl, (String, String)> {
    let name = match block.labels.as_slice() {
        [label] => label.as_str().to_string(),
        _ => {
            return Err((
                "variable".to_string(),
                "a variable block needs exactly one label, the variable's name".to_string(),
            ))
        }
    };
    let path = variable_path(&name);
    let fail = |message: String| Err((path.clone(), message));
    if Identifier::new(name.as_str()).is_err() {
        return fail(format!("\"{name}\" is not a valid variable name"));
    }
    let mut ty = Type::Any;
    let mut default = None;
    let mut validations = Vec::new();
    for structure in block.body.into_inner() {
        match structure {
            Structure::Attribute(attr) => match attr.key.as_str() {
                "type" => match Type::parse(&attr.expr) {
                    Ok(t) => ty = t,
                    Err(e) => return fail(format!("type: {e}")),
                },
                "default" => match const_eval(&attr.expr, session) {
                    Ok(v) => default = Some(v),
                    Err(e) => return fail(format!("default: {e}")),
                },
                "description" => match const_eval(&attr.expr, session) {
                    Ok(Value::String(_) | Value::Null) => {}
                    Ok(other) => {
                        return fail(format!(
                            "description: a string is required, got {}",
                            describe(&other)
                        ))
                    }
                    Err(e) => return fail(format!("description: {e}")),
                },
                "sensitive" => match const_eval(&attr.expr, session).map(|v| to_bool(&v)) {
                    Ok(Some(_)) => {}
                    Ok(None) => return fail("sensitive: a bool is required".to_string()),
                    Err(e) => return fail(format!("sensitive: {e}")),
                },
                other => return fail(format!("unsupported argument \"{other}\"")),
            },
            Structure::Block(b) if b.identifier.as_str() == "validation" => {
                let mut condition = None;
                let mut error_message = None;
                for s in b.body.into_inner() {
                    match s {
                        Structure::Attribute(a) if a.key.as_str() == "condition" => {
                            condition = Some(a.expr);
                        }
                        Structure::Attribute(a) if a.key.as_str() == "error_message" => {
                            error_message = Some(a.expr);
                        }
                        Structure::Attribute(a) => {
                            return fail(format!("validation: unsupported argument \"{}\"", a.key))
                        }
                        Structure::Block(inner) => {
                            return fail(format!(
                                "validation: unexpected block \"{}\"",
                                inner.identifier
                            ))
                        }
                    }
                }
                match (condition, error_message) {
                    (Some(condition), Some(error_message)) => validations.push(Validation {
                        condition,
                        error_message,
                    }),
                    _ => {
                        return fail(
                            "a validation block needs both condition and error_message".to_string(),
                        )
                    }
                }
            }
            Structure::Block(b) => return fail(format!("unexpected block \"{}\"", b.identifier)),
        }
    }
    if let Some(value) = default.take() {
        match ty.convert(value) {
            Ok(v) => default = Some(v),
            Err(e) => return fail(format!("the default value is not a valid {ty}: {e}")),
        }
    }
    Ok(VariableDecl {
        name,
        ty,
        default,
        validations,
    })
}

/// Evaluates an expression that may call functions but refers to no variables, locals or
/// runtime values: defaults, var files, `-var` values.
fn const_eval(expr: &Expression, session: &Session<'_>) -> Result<Value, String> {
    let ev = Evaluator {
        vars: None,
        locals: None,
        session,
        runtime_refs: false,
        depth: Cell::new(0),
    };
    ev.eval(expr, &Scope::Root).map_err(|e| e.message)
}

// ---------------------------------------------------------------------------------------------
// Binding variable values
// ---------------------------------------------------------------------------------------------

/// A value offered for a variable by one of the sources, before conversion.
enum Offered {
    /// Text from `-var` or `NOMAD_VAR_<name>`, read according to the variable's type.
    Text { text: String, source: String },
    /// A value from a var file.
    Value { value: Value, source: String },
}

/// Binds every declared variable to its value from the highest-precedence source, converts it to
/// the declared type and runs the validation blocks.
fn bind_variables(
    decls: &[VariableDecl],
    session: &Session<'_>,
) -> Result<Map<String, Value>, Error> {
    let opts = session.opts;
    let mut errors = ValidationErrors::new();
    let mut offered: HashMap<&str, Offered> = HashMap::new();

    for decl in decls {
        let key = format!("NOMAD_VAR_{}", decl.name);
        if let Some(text) = opts.env.get(&key) {
            offered.insert(
                &decl.name,
                Offered::Text {
                    text: text.clone(),
                    source: key,
                },
            );
        }
    }
    for (file, text) in &opts.var_files {
        for (name, value) in read_var_file(file, text, session, &mut errors)? {
            match decls.iter().find(|d| d.name == name) {
                Some(decl) => {
                    offered.insert(
                        &decl.name,
                        Offered::Value {
                            value,
                            source: format!("var file \"{file}\""),
                        },
                    );
                }
                None => errors.push(
                    variable_path(&name),
                    format!(
                        "var file \"{file}\" sets variable \"{name}\", which the job does not \
                         declare; add a variable \"{name}\" block or remove it from the file"
                    ),
                ),
            }
        }
    }
    for (name, text) in &opts.vars {
        match decls.iter().find(|d| d.name == *name) {
            Some(decl) => {
                offered.insert(
                    &decl.name,
                    Offered::Text {
                        text: text.clone(),
                        source: "-var".to_string(),
                    },
                );
            }
            None => errors.push(
                variable_path(name),
                format!(
                    "-var sets variable \"{name}\", which the job does not declare; \
                     add a variable \"{name}\" block or remove the -var"
                ),
            ),
        }
    }

    let mut values = Map::new();
    for decl in decls {
        let path = variable_path(&decl.name);
        let value = match offered.remove(decl.name.as_str()) {
            None => match &decl.default {
                Some(v) => v.clone(),
                None => {
                    errors.push(
                        path,
                        format!(
                            "variable \"{0}\" is required but has no value; set it with -var, \
                             -var-file or NOMAD_VAR_{0}",
                            decl.name
                        ),
                    );
                    continue;
                }
            },
            Some(Offered::Value { value, source }) => match decl.ty.convert(value) {
                Ok(v) => v,
                Err(e) => {
                    errors.push(
                        path,
                        format!("invalid value from {source} for type {}: {e}", decl.ty),
                    );
                    continue;
                }
            },
            Some(Offered::Text { text, source }) => {
                match read_text_value(decl, &text, &source, session)? {
                    Ok(v) => v,
                    Err(e) => {
                        errors.push(path, e);
                        continue;
                    }
                }
            }
        };
        if types::deeper_than(&value, MAX_VALUE_DEPTH) {
            errors.push(path, "the value nests lists and objects too deeply");
            continue;
        }
        values.insert(decl.name.clone(), value);
    }
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }

    let ev = Evaluator {
        vars: Some(&values),
        locals: None,
        session,
        runtime_refs: false,
        depth: Cell::new(0),
    };
    for decl in decls {
        for validation in &decl.validations {
            let path = variable_path(&decl.name);
            let passed = match ev.eval(&validation.condition, &Scope::Root) {
                Ok(v) => match to_bool(&v) {
                    Some(b) => b,
                    None => {
                        errors.push(
                            path,
                            format!("validation condition must be a bool, got {}", describe(&v)),
                        );
                        continue;
                    }
                },
                Err(e) => {
                    errors.push(path, format!("validation condition: {}", e.message));
                    continue;
                }
            };
            if !passed {
                match ev.eval(&validation.error_message, &Scope::Root) {
                    Ok(v) => match to_string(&v) {
                        Some(message) => errors.push(path, message),
                        None => errors.push(
                            path,
                            format!("error_message must be a string, got {}", describe(&v)),
                        ),
                    },
                    Err(e) => errors.push(path, format!("error_message: {}", e.message)),
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(Error::Invalid(errors))
    }
}

/// Reads the text of a `-var` or `NOMAD_VAR_<name>` value as the variable's type: as it stands
/// for `string` and `any`; as a literal or else an HCL expression for `number` and `bool`
/// (`3`, `true`, `2 * 4`); as an HCL expression for collections and objects. The outer error is
/// malformed HCL text, the inner one a value that does not fit the type.
fn read_text_value(
    decl: &VariableDecl,
    text: &str,
    source: &str,
    session: &Session<'_>,
) -> Result<Result<Value, String>, Error> {
    let mismatch = |e: String| format!("invalid value from {source} for type {}: {e}", decl.ty);
    if decl.ty.takes_raw_string() {
        let direct = decl.ty.convert(Value::String(text.to_string()));
        if direct.is_ok() || matches!(decl.ty, Type::Any | Type::String) {
            return Ok(direct.map_err(mismatch));
        }
        let as_expression = parse_expression(text, source, session)
            .ok()
            .and_then(|expr| const_eval(&expr, session).ok())
            .and_then(|v| decl.ty.convert(v).ok());
        return Ok(match as_expression {
            Some(v) => Ok(v),
            None => direct.map_err(mismatch),
        });
    }
    let expr = parse_expression(text, source, session)?;
    Ok(match const_eval(&expr, session) {
        Ok(v) => decl.ty.convert(v).map_err(mismatch),
        Err(e) => Err(format!("invalid value from {source}: {e}")),
    })
}

/// Reads a var file: JSON when its name ends in `.json`, HCL otherwise. Only attributes are
/// allowed; their values may use functions but no variables.
fn read_var_file(
    file: &str,
    text: &str,
    session: &Session<'_>,
    errors: &mut ValidationErrors,
) -> Result<Vec<(String, Value)>, Error> {
    if file.ends_with(".json") {
        let value: Value = serde_json::from_str(text).map_err(|e| Error::Syntax {
            file: file.to_string(),
            message: e.to_string(),
        })?;
        return match value {
            Value::Object(fields) => Ok(fields.into_iter().collect()),
            other => Err(Error::Syntax {
                file: file.to_string(),
                message: format!(
                    "a JSON var file must hold an object of variable values, got {}",
                    type_name(&other)
                ),
            }),
        };
    }
    let body = parse_source(text, file, &session.templates)?;
    let mut out = Vec::new();
    for structure in body.into_inner() {
        match structure {
            Structure::Attribute(attr) => match const_eval(&attr.expr, session) {
                Ok(v) => out.push((attr.key.as_str().to_string(), v)),
                Err(e) => errors.push(
                    variable_path(attr.key.as_str()),
                    format!("in var file \"{file}\": {e}"),
                ),
            },
            Structure::Block(b) => errors.push(
                "",
                format!(
                    "var file \"{file}\" may only set variables, but has a \"{}\" block",
                    b.identifier
                ),
            ),
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Locals
// ---------------------------------------------------------------------------------------------

/// The locals of a job, evaluated on first use.
struct LocalTable {
    exprs: Vec<(String, Expression)>,
    state: RefCell<HashMap<String, LocalState>>,
    /// The locals being evaluated, outermost first, for naming a cycle.
    stack: RefCell<Vec<String>>,
}

enum LocalState {
    Busy,
    Done(Value),
    Failed(EvalError),
}

impl LocalTable {
    fn new(exprs: Vec<(String, Expression)>) -> LocalTable {
        LocalTable {
            exprs,
            state: RefCell::new(HashMap::new()),
            stack: RefCell::new(Vec::new()),
        }
    }

    fn resolve(&self, name: &str, ev: &Evaluator<'_>) -> EvalResult<Value> {
        let Some((_, expr)) = self.exprs.iter().find(|(n, _)| n == name) else {
            return Err(EvalError::hard(format!(
                "reference to undeclared local value \"{name}\" (local.{name})"
            )));
        };
        match self.state.borrow().get(name) {
            Some(LocalState::Done(v)) => return Ok(v.clone()),
            Some(LocalState::Failed(e)) => return Err(e.clone()),
            Some(LocalState::Busy) => {
                let stack = self.stack.borrow();
                let start = stack.iter().position(|n| n == name).unwrap_or(0);
                let mut chain: Vec<&str> = stack.iter().skip(start).map(String::as_str).collect();
                chain.push(name);
                return Err(EvalError::hard(format!(
                    "cycle between locals: {}",
                    chain.join(" -> ")
                )));
            }
            None => {}
        }
        self.state
            .borrow_mut()
            .insert(name.to_string(), LocalState::Busy);
        self.stack.borrow_mut().push(name.to_string());
        let result = ev.eval(expr, &Scope::Root).and_then(|v| {
            if types::deeper_than(&v, MAX_VALUE_DEPTH) {
                Err(EvalError::hard(
                    "the value nests lists and objects too deeply",
                ))
            } else {
                Ok(v)
            }
        });
        self.stack.borrow_mut().pop();
        let state = match &result {
            Ok(v) => LocalState::Done(v.clone()),
            Err(e) => {
                let mut e = e.clone();
                e.local.get_or_insert_with(|| name.to_string());
                LocalState::Failed(e)
            }
        };
        let result = match &state {
            LocalState::Failed(e) => Err(e.clone()),
            _ => result,
        };
        self.state.borrow_mut().insert(name.to_string(), state);
        result
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

/// Why an expression could not be evaluated.
#[derive(Debug, Clone)]
struct EvalError {
    message: String,
    /// A mistake in the file itself (an undeclared reference, an unsupported function, a cycle),
    /// which `try` and `can` do not swallow.
    hard: bool,
    /// The local whose evaluation failed first, so a failure is reported once, at its origin.
    local: Option<String>,
}

impl EvalError {
    fn soft(message: impl Into<String>) -> EvalError {
        EvalError {
            message: message.into(),
            hard: false,
            local: None,
        }
    }

    fn hard(message: impl Into<String>) -> EvalError {
        EvalError {
            message: message.into(),
            hard: true,
            local: None,
        }
    }
}

type EvalResult<T> = Result<T, EvalError>;

/// Names bound by `for` expressions, template `for` directives and `dynamic` iterators.
enum Scope<'s> {
    Root,
    Bind {
        name: &'s str,
        value: &'s Value,
        parent: &'s Scope<'s>,
    },
}

impl Scope<'_> {
    fn lookup(&self, wanted: &str) -> Option<&Value> {
        let mut scope = self;
        while let Scope::Bind {
            name,
            value,
            parent,
        } = scope
        {
            if *name == wanted {
                return Some(value);
            }
            scope = parent;
        }
        None
    }
}

/// Evaluates expressions against the bound variables and locals.
struct Evaluator<'a> {
    /// `None` where variables may not be used (defaults, var files).
    vars: Option<&'a Map<String, Value>>,
    /// `None` where locals may not be used (defaults, var files, validations).
    locals: Option<&'a LocalTable>,
    session: &'a Session<'a>,
    /// Whether unknown root names are runtime interpolations (in the job) or errors (elsewhere).
    runtime_refs: bool,
    depth: Cell<usize>,
}

/// Keeps count of the evaluation depth while it lives.
struct DepthGuard<'a>(&'a Cell<usize>);

impl Drop for DepthGuard<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

impl<'a> Evaluator<'a> {
    fn enter(&self) -> EvalResult<DepthGuard<'_>> {
        let depth = self.depth.get() + 1;
        if depth > MAX_DEPTH {
            return Err(EvalError::hard(format!(
                "expressions nest too deeply (more than {MAX_DEPTH} levels, counting locals \
                 that refer to other locals)"
            )));
        }
        self.depth.set(depth);
        Ok(DepthGuard(&self.depth))
    }

    /// Evaluates every local once, reporting each failure at the local where it started.
    fn check_locals(&self, errors: &mut ValidationErrors) {
        let Some(table) = self.locals else { return };
        for (name, _) in &table.exprs {
            if let Err(e) = table.resolve(name, self) {
                if e.local.as_deref().is_none_or(|origin| origin == name) {
                    errors.push("locals", format!("local.{name}: {}", e.message));
                }
            }
        }
    }

    // -- bodies and blocks ---------------------------------------------------------------------

    fn walk_body(
        &self,
        body: Body,
        scope: &Scope<'_>,
        path: &str,
        errors: &mut ValidationErrors,
    ) -> Body {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for structure in body.into_inner() {
            match structure {
                Structure::Attribute(attr) => {
                    if !seen.insert(attr.key.as_str().to_string()) {
                        errors.push(
                            path,
                            format!("attribute \"{}\" is set more than once", attr.key),
                        );
                        continue;
                    }
                    match self.eval(&attr.expr, scope) {
                        Ok(value) => out.push(Structure::Attribute(Attribute {
                            key: attr.key,
                            expr: Expression::from(value),
                        })),
                        Err(e) => errors.push(path, format!("{}: {}", attr.key, e.message)),
                    }
                }
                Structure::Block(block) if block.identifier.as_str() == "dynamic" => {
                    for generated in self.expand_dynamic(block, scope, path, errors) {
                        out.push(Structure::Block(generated));
                    }
                }
                Structure::Block(block) => {
                    let block_path = block_path(path, block.identifier.as_str(), &block.labels);
                    let body = self.walk_body(block.body, scope, &block_path, errors);
                    out.push(Structure::Block(Block {
                        identifier: block.identifier,
                        labels: block.labels,
                        body,
                    }));
                }
            }
        }
        Body(out)
    }

    /// Expands `dynamic "kind" { for_each, iterator, labels, content { ... } }` into one `kind`
    /// block per element of `for_each`.
    fn expand_dynamic(
        &self,
        block: Block,
        scope: &Scope<'_>,
        path: &str,
        errors: &mut ValidationErrors,
    ) -> Vec<Block> {
        let kind = match block.labels.as_slice() {
            [label] => label.as_str().to_string(),
            _ => {
                errors.push(
                    block_path(path, "dynamic", &block.labels),
                    "a dynamic block needs exactly one label, the type of block to generate",
                );
                return Vec::new();
            }
        };
        let dyn_path = block_path(path, "dynamic", &block.labels);
        let identifier = match Identifier::new(kind.as_str()) {
            Ok(id) => id,
            Err(_) => {
                errors.push(dyn_path, format!("\"{kind}\" is not a valid block type"));
                return Vec::new();
            }
        };
        let mut for_each = None;
        let mut iterator = kind.clone();
        let mut labels_expr = None;
        let mut content: Option<Body> = None;
        let mut ok = true;
        for structure in block.body.into_inner() {
            match structure {
                Structure::Attribute(a) => match a.key.as_str() {
                    "for_each" => for_each = Some(a.expr),
                    "labels" => labels_expr = Some(a.expr),
                    "iterator" => match a.expr {
                        Expression::Variable(v) => iterator = v.as_str().to_string(),
                        _ => {
                            errors.push(
                                &dyn_path,
                                "iterator must be a bare name, like iterator = port",
                            );
                            ok = false;
                        }
                    },
                    other => {
                        errors.push(&dyn_path, format!("unsupported argument \"{other}\""));
                        ok = false;
                    }
                },
                Structure::Block(b) if b.identifier.as_str() == "content" => {
                    if content.is_some() {
                        errors.push(&dyn_path, "only one content block is allowed");
                        ok = false;
                    } else if !b.labels.is_empty() {
                        errors.push(&dyn_path, "a content block takes no labels");
                        ok = false;
                    } else {
                        content = Some(b.body);
                    }
                }
                Structure::Block(b) => {
                    errors.push(&dyn_path, format!("unexpected block \"{}\"", b.identifier));
                    ok = false;
                }
            }
        }
        let (Some(for_each), Some(content)) = (for_each, content) else {
            errors.push(
                &dyn_path,
                "a dynamic block needs for_each and a content block",
            );
            return Vec::new();
        };
        if !ok {
            return Vec::new();
        }
        let items = match self
            .eval(&for_each, scope)
            .and_then(|v| collection_items(v, "for_each"))
        {
            Ok(items) => items,
            Err(e) => {
                errors.push(&dyn_path, format!("for_each: {}", e.message));
                return Vec::new();
            }
        };
        let mut out = Vec::with_capacity(items.len());
        for (key, value) in items {
            let mut it = Map::new();
            it.insert("key".to_string(), key);
            it.insert("value".to_string(), value);
            let it = Value::Object(it);
            let inner = Scope::Bind {
                name: &iterator,
                value: &it,
                parent: scope,
            };
            let labels = match &labels_expr {
                None => Vec::new(),
                Some(expr) => match self.eval(expr, &inner).and_then(|v| block_labels(&v)) {
                    Ok(labels) => labels,
                    Err(e) => {
                        errors.push(&dyn_path, format!("labels: {}", e.message));
                        return out;
                    }
                },
            };
            let generated_path = block_path(path, &kind, &labels);
            let body = self.walk_body(content.clone(), &inner, &generated_path, errors);
            out.push(Block {
                identifier: identifier.clone(),
                labels,
                body,
            });
        }
        out
    }

    // -- expressions ---------------------------------------------------------------------------

    fn eval(&self, expr: &Expression, scope: &Scope<'_>) -> EvalResult<Value> {
        let _guard = self.enter()?;
        match expr {
            Expression::Null => Ok(Value::Null),
            Expression::Bool(b) => Ok(Value::Bool(*b)),
            Expression::Number(n) => Ok(Value::Number(*n)),
            Expression::String(s) => Ok(Value::String(s.clone())),
            Expression::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                let mut size = 1usize;
                for item in items {
                    let v = self.eval(item, scope)?;
                    size = charge(size, &v)?;
                    out.push(v);
                }
                Ok(Value::Array(out))
            }
            Expression::Object(fields) => {
                let mut out = Map::with_capacity(fields.len());
                let mut size = 1usize;
                for (key, value) in fields.iter() {
                    let key = match key {
                        ObjectKey::Identifier(id) => id.as_str().to_string(),
                        ObjectKey::Expression(e) => {
                            let k = self.eval(e, scope)?;
                            to_string(&k).ok_or_else(|| {
                                EvalError::soft(format!(
                                    "an object key must be a string, got {}",
                                    describe(&k)
                                ))
                            })?
                        }
                        _ => return Err(EvalError::soft("unsupported object key")),
                    };
                    let v = self.eval(value, scope)?;
                    size = charge(size.saturating_add(key.len() / 16), &v)?;
                    out.insert(key, v);
                }
                Ok(Value::Object(out))
            }
            Expression::TemplateExpr(t) => self.eval_template_expr(t, scope),
            Expression::Variable(v) => self.eval_traversal_parts(v.as_str(), &[], scope),
            Expression::Traversal(t) => self.eval_traversal(t, scope),
            Expression::FuncCall(call) => self.eval_call(call, scope),
            Expression::Parenthesis(inner) => self.eval(inner, scope),
            Expression::Conditional(c) => self.eval_conditional(c, scope),
            Expression::Operation(op) => match op.as_ref() {
                Operation::Unary(u) => {
                    let v = self.eval(&u.expr, scope)?;
                    unary(u.operator, v)
                }
                Operation::Binary(b) => {
                    self.eval_binary(b.operator, &b.lhs_expr, &b.rhs_expr, scope)
                }
            },
            Expression::ForExpr(f) => self.eval_for(f, scope),
            _ => Err(EvalError::soft("unsupported expression")),
        }
    }

    fn eval_conditional(&self, c: &Conditional, scope: &Scope<'_>) -> EvalResult<Value> {
        let cond = self.eval(&c.cond_expr, scope)?;
        match to_bool(&cond) {
            Some(true) => self.eval(&c.true_expr, scope),
            Some(false) => self.eval(&c.false_expr, scope),
            None => Err(EvalError::soft(format!(
                "the condition of a conditional must be a bool, got {}",
                describe(&cond)
            ))),
        }
    }

    fn eval_binary(
        &self,
        op: BinaryOperator,
        lhs: &Expression,
        rhs: &Expression,
        scope: &Scope<'_>,
    ) -> EvalResult<Value> {
        let left = self.eval(lhs, scope)?;
        if matches!(op, BinaryOperator::And | BinaryOperator::Or) {
            let l = to_bool(&left).ok_or_else(|| operand_error(op, &left, "a bool"))?;
            match (op, l) {
                (BinaryOperator::And, false) => return Ok(Value::Bool(false)),
                (BinaryOperator::Or, true) => return Ok(Value::Bool(true)),
                _ => {}
            }
            let right = self.eval(rhs, scope)?;
            let r = to_bool(&right).ok_or_else(|| operand_error(op, &right, "a bool"))?;
            return Ok(Value::Bool(r));
        }
        let right = self.eval(rhs, scope)?;
        binary(op, left, right)
    }

    fn eval_for(&self, f: &ForExpr, scope: &Scope<'_>) -> EvalResult<Value> {
        let collection = self.eval(&f.collection_expr, scope)?;
        let items = collection_items(collection, "a for expression")?;
        let mut size = 1usize;
        let mut list = Vec::new();
        let mut object: Map<String, Value> = Map::new();
        for (key, value) in items {
            let key_scope;
            let scope = match &f.key_var {
                Some(k) => {
                    key_scope = Scope::Bind {
                        name: k.as_str(),
                        value: &key,
                        parent: scope,
                    };
                    &key_scope
                }
                None => scope,
            };
            let inner = Scope::Bind {
                name: f.value_var.as_str(),
                value: &value,
                parent: scope,
            };
            if let Some(cond) = &f.cond_expr {
                let c = self.eval(cond, &inner)?;
                match to_bool(&c) {
                    Some(true) => {}
                    Some(false) => continue,
                    None => {
                        return Err(EvalError::soft(format!(
                            "the if clause of a for expression must be a bool, got {}",
                            describe(&c)
                        )))
                    }
                }
            }
            let v = self.eval(&f.value_expr, &inner)?;
            size = charge(size, &v)?;
            match &f.key_expr {
                None => list.push(v),
                Some(key_expr) => {
                    let k = self.eval(key_expr, &inner)?;
                    let k = to_string(&k).ok_or_else(|| {
                        EvalError::soft(format!(
                            "the key of a for expression must be a string, got {}",
                            describe(&k)
                        ))
                    })?;
                    size = size.saturating_add(k.len() / 16);
                    if f.grouping {
                        match object.get_mut(&k) {
                            Some(Value::Array(group)) => group.push(v),
                            _ => {
                                object.insert(k, Value::Array(vec![v]));
                            }
                        }
                    } else if object.contains_key(&k) {
                        return Err(EvalError::soft(format!(
                            "duplicate key \"{k}\" in a for expression; add ... after the value \
                             to group values by key"
                        )));
                    } else {
                        object.insert(k, v);
                    }
                }
            }
        }
        if f.key_expr.is_some() {
            Ok(Value::Object(object))
        } else {
            Ok(Value::Array(list))
        }
    }

    // -- references ----------------------------------------------------------------------------

    fn eval_traversal(&self, t: &Traversal, scope: &Scope<'_>) -> EvalResult<Value> {
        match &t.expr {
            Expression::Variable(root) => {
                self.eval_traversal_parts(root.as_str(), &t.operators, scope)
            }
            other => {
                let base = self.eval(other, scope)?;
                self.apply_operators(base, &t.operators, scope)
            }
        }
    }

    /// Evaluates `root` followed by `ops`: a bound name, `var.x`, `local.x`, or a runtime
    /// reference that becomes `${...}` text.
    fn eval_traversal_parts(
        &self,
        root: &str,
        ops: &[TraversalOperator],
        scope: &Scope<'_>,
    ) -> EvalResult<Value> {
        if let Some(template) = self.session.templates.get(root) {
            let value = self.eval_template(&template, scope)?;
            return self.apply_operators(value, ops, scope);
        }
        if let Some(bound) = scope.lookup(root) {
            return self.apply_operators(bound.clone(), ops, scope);
        }
        match root {
            "var" => {
                let Some(vars) = self.vars else {
                    return Err(EvalError::hard("variables cannot be used here"));
                };
                let Some((name, rest)) = self.first_name(ops, scope)? else {
                    return self.apply_operators(Value::Object(vars.clone()), ops, scope);
                };
                match vars.get(&name) {
                    Some(v) => self.apply_operators(v.clone(), rest, scope),
                    None => Err(EvalError::hard(format!(
                        "reference to undeclared variable \"{name}\" (var.{name}); declare it \
                         with a variable \"{name}\" block"
                    ))),
                }
            }
            "local" => {
                let Some(table) = self.locals else {
                    return Err(EvalError::hard("locals cannot be used here"));
                };
                let Some((name, rest)) = self.first_name(ops, scope)? else {
                    return Err(EvalError::hard(
                        "local must be followed by the name of a local, like local.name",
                    ));
                };
                let v = table.resolve(&name, self)?;
                self.apply_operators(v, rest, scope)
            }
            _ if self.runtime_refs => self.runtime_reference(root, ops, scope),
            _ => Err(EvalError::hard(format!(
                "unknown name \"{root}\"; only literal values and functions can be used here"
            ))),
        }
    }

    /// The attribute name after `var` or `local`: `.name` or `["name"]`.
    fn first_name<'o>(
        &self,
        ops: &'o [TraversalOperator],
        scope: &Scope<'_>,
    ) -> EvalResult<Option<(String, &'o [TraversalOperator])>> {
        let Some((first, rest)) = ops.split_first() else {
            return Ok(None);
        };
        match first {
            TraversalOperator::GetAttr(id) => Ok(Some((id.as_str().to_string(), rest))),
            TraversalOperator::Index(e) => match self.eval(e, scope)? {
                Value::String(s) => Ok(Some((s, rest))),
                other => Err(EvalError::soft(format!(
                    "a name is required here, got {}",
                    describe(&other)
                ))),
            },
            _ => Ok(None),
        }
    }

    /// A reference the client resolves: kept as `${root.attr["key"]}` text.
    fn runtime_reference(
        &self,
        root: &str,
        ops: &[TraversalOperator],
        scope: &Scope<'_>,
    ) -> EvalResult<Value> {
        let mut text = String::from(root);
        for op in ops {
            match op {
                TraversalOperator::GetAttr(id) => {
                    text.push('.');
                    text.push_str(id.as_str());
                }
                TraversalOperator::Index(e) => match self.eval(e, scope)? {
                    Value::String(s) => {
                        text.push('[');
                        text.push_str(&quote(&s));
                        text.push(']');
                    }
                    Value::Number(n) => text.push_str(&format!("[{n}]")),
                    other => {
                        return Err(EvalError::soft(format!(
                            "an index must be a string or number, got {}",
                            describe(&other)
                        )))
                    }
                },
                TraversalOperator::LegacyIndex(n) => text.push_str(&format!("[{n}]")),
                TraversalOperator::AttrSplat => text.push_str(".*"),
                TraversalOperator::FullSplat => text.push_str("[*]"),
            }
        }
        Ok(Value::String(format!("${{{text}}}")))
    }

    /// Applies attribute, index and splat operators to a value.
    fn apply_operators(
        &self,
        mut value: Value,
        ops: &[TraversalOperator],
        scope: &Scope<'_>,
    ) -> EvalResult<Value> {
        let mut rest = ops;
        while let Some((op, after)) = rest.split_first() {
            rest = after;
            value = match op {
                TraversalOperator::GetAttr(id) => get_attr(value, id.as_str())?,
                TraversalOperator::Index(e) => {
                    let key = self.eval(e, scope)?;
                    index(value, &key)?
                }
                TraversalOperator::LegacyIndex(n) => {
                    index(value, &Value::Number(Number::from(*n)))?
                }
                TraversalOperator::AttrSplat => {
                    // `.*` applies the attribute lookups that follow it to every element.
                    let n = rest
                        .iter()
                        .take_while(|o| matches!(o, TraversalOperator::GetAttr(_)))
                        .count();
                    let (attrs, after) = rest.split_at_checked(n).unwrap_or((rest, &[]));
                    rest = after;
                    let _guard = self.enter()?;
                    let mut out = Vec::new();
                    for elem in splat_elements(value) {
                        out.push(self.apply_operators(elem, attrs, scope)?);
                    }
                    Value::Array(out)
                }
                TraversalOperator::FullSplat => {
                    // `[*]` applies everything that follows it to every element.
                    let _guard = self.enter()?;
                    let mut out = Vec::new();
                    for elem in splat_elements(value) {
                        out.push(self.apply_operators(elem, rest, scope)?);
                    }
                    return Ok(Value::Array(out));
                }
            };
        }
        Ok(value)
    }

    // -- function calls ------------------------------------------------------------------------

    fn eval_call(&self, call: &FuncCall, scope: &Scope<'_>) -> EvalResult<Value> {
        let name = call.name.name.as_str();
        if call.name.is_namespaced() {
            let mut full: Vec<&str> = call.name.namespace.iter().map(|i| i.as_str()).collect();
            full.push(name);
            return Err(EvalError::hard(format!(
                "function \"{}\" is not supported",
                full.join("::")
            )));
        }
        match name {
            "can" | "try" | "convert" if call.expand_final => {
                return Err(EvalError::soft(format!(
                    "{name}: arguments cannot be expanded with ..."
                )))
            }
            "can" => {
                let [arg] = call.args.as_slice() else {
                    return Err(EvalError::soft("can: takes exactly one argument"));
                };
                return match self.eval(arg, scope) {
                    Ok(_) => Ok(Value::Bool(true)),
                    Err(e) if e.hard => Err(e),
                    Err(_) => Ok(Value::Bool(false)),
                };
            }
            "try" => {
                let mut last = None;
                for arg in &call.args {
                    match self.eval(arg, scope) {
                        Ok(v) => return Ok(v),
                        Err(e) if e.hard => return Err(e),
                        Err(e) => last = Some(e),
                    }
                }
                return Err(EvalError::soft(match last {
                    Some(e) => format!(
                        "try: no argument could be evaluated; the last one failed: {}",
                        e.message
                    ),
                    None => "try: needs at least one argument".to_string(),
                }));
            }
            "convert" => {
                let [value, ty] = call.args.as_slice() else {
                    return Err(EvalError::soft("convert: takes a value and a type"));
                };
                let ty = Type::parse(ty).map_err(|e| EvalError::hard(format!("convert: {e}")))?;
                let value = self.eval(value, scope)?;
                return ty
                    .convert(value)
                    .map_err(|e| EvalError::soft(format!("convert: {e}")));
            }
            _ => {}
        }
        if !funcs::is_supported(name) {
            return Err(EvalError::hard(format!(
                "function \"{name}\" is not supported"
            )));
        }
        let mut args = Vec::with_capacity(call.args.len());
        let last = call.args.len().saturating_sub(1);
        let mut size = 0usize;
        for (i, arg) in call.args.iter().enumerate() {
            let v = self.eval(arg, scope)?;
            size = charge(size, &v)?;
            if call.expand_final && i == last {
                match v {
                    Value::Array(items) => args.extend(items),
                    other => {
                        return Err(EvalError::soft(format!(
                            "{name}: only a list can be expanded with ..., got {}",
                            describe(&other)
                        )))
                    }
                }
            } else {
                args.push(v);
            }
        }
        let env = funcs::FuncEnv {
            base_dir: self.session.opts.base_dir.as_deref(),
        };
        let result = funcs::call(name, args, &env).map_err(EvalError::soft)?;
        charge(0, &result)?;
        Ok(result)
    }

    // -- templates -----------------------------------------------------------------------------

    fn eval_template_expr(&self, t: &TemplateExpr, scope: &Scope<'_>) -> EvalResult<Value> {
        let template = Template::from_expr(t)
            .map_err(|e| EvalError::soft(format!("invalid template: {e}")))?;
        self.eval_template(&template, scope)
    }

    fn eval_template(&self, template: &Template, scope: &Scope<'_>) -> EvalResult<Value> {
        // A template that is only one interpolation yields the interpolated value itself, so
        // "${var.count}" stays a number.
        if let [Element::Interpolation(interp)] = template.elements() {
            return self.eval(&interp.expr, scope);
        }
        let mut out = String::new();
        self.render(template, scope, false, false, &mut out)?;
        Ok(Value::String(out))
    }

    /// Appends the rendering of `template` to `out`. `trim_start` and `trim_end` say whether
    /// the markers around the template strip the whitespace at its start and end (`~`).
    fn render(
        &self,
        template: &Template,
        scope: &Scope<'_>,
        trim_start: bool,
        trim_end: bool,
        out: &mut String,
    ) -> EvalResult<()> {
        let _guard = self.enter()?;
        let elements = template.elements();
        for (i, element) in elements.iter().enumerate() {
            match element {
                Element::Literal(text) => {
                    let strip_before = match i.checked_sub(1).and_then(|p| elements.get(p)) {
                        Some(prev) => strips(prev).1,
                        None => trim_start,
                    };
                    let strip_after = match elements.get(i + 1) {
                        Some(next) => strips(next).0,
                        None => trim_end,
                    };
                    let mut text = text.as_str();
                    if strip_before {
                        text = text.trim_start();
                    }
                    if strip_after {
                        text = text.trim_end();
                    }
                    out.push_str(text);
                }
                Element::Interpolation(interp) => {
                    let v = self.eval(&interp.expr, scope)?;
                    out.push_str(&interpolated(&v)?);
                }
                Element::Directive(directive) => match directive.as_ref() {
                    Directive::If(d) => {
                        let c = self.eval(&d.cond_expr, scope)?;
                        let cond = to_bool(&c).ok_or_else(|| {
                            EvalError::soft(format!(
                                "the condition of an if directive must be a bool, got {}",
                                describe(&c)
                            ))
                        })?;
                        if cond {
                            let end = match d.false_template {
                                Some(_) => d.else_strip.strip_start(),
                                None => d.endif_strip.strip_start(),
                            };
                            self.render(&d.true_template, scope, d.if_strip.strip_end(), end, out)?;
                        } else if let Some(f) = &d.false_template {
                            self.render(
                                f,
                                scope,
                                d.else_strip.strip_end(),
                                d.endif_strip.strip_start(),
                                out,
                            )?;
                        }
                    }
                    Directive::For(d) => {
                        let collection = self.eval(&d.collection_expr, scope)?;
                        for (key, value) in collection_items(collection, "a for directive")? {
                            let key_scope;
                            let outer = match &d.key_var {
                                Some(k) => {
                                    key_scope = Scope::Bind {
                                        name: k.as_str(),
                                        value: &key,
                                        parent: scope,
                                    };
                                    &key_scope
                                }
                                None => scope,
                            };
                            let inner = Scope::Bind {
                                name: d.value_var.as_str(),
                                value: &value,
                                parent: outer,
                            };
                            self.render(
                                &d.template,
                                &inner,
                                d.for_strip.strip_end(),
                                d.endfor_strip.strip_start(),
                                out,
                            )?;
                            if out.len() > MAX_STRING {
                                break;
                            }
                        }
                    }
                },
            }
            if out.len() > MAX_STRING {
                return Err(EvalError::soft(format!(
                    "the template renders to more than {MAX_STRING} bytes"
                )));
            }
        }
        Ok(())
    }
}

/// Whether a template element strips the whitespace before it and after it (`{~` and `~}`).
fn strips(element: &Element) -> (bool, bool) {
    match element {
        Element::Literal(_) => (false, false),
        Element::Interpolation(i) => (i.strip.strip_start(), i.strip.strip_end()),
        Element::Directive(d) => match d.as_ref() {
            Directive::If(d) => (d.if_strip.strip_start(), d.endif_strip.strip_end()),
            Directive::For(d) => (d.for_strip.strip_start(), d.endfor_strip.strip_end()),
        },
    }
}

/// The text an interpolated value contributes to a template.
fn interpolated(value: &Value) -> EvalResult<String> {
    match value {
        Value::Null => Err(EvalError::soft(
            "cannot include a null value in a string template",
        )),
        Value::Array(_) | Value::Object(_) => Err(EvalError::soft(format!(
            "cannot include a {} in a string template; use jsonencode or join to make a string",
            type_name(value)
        ))),
        other => to_string(other).ok_or_else(|| EvalError::soft("not a string")),
    }
}

/// The key and value pairs a `for` iterates: a list's indexes and elements, an object's keys
/// (in lexical order, as HCL iterates maps) and values.
fn collection_items(value: Value, what: &str) -> EvalResult<Vec<(Value, Value)>> {
    match value {
        Value::Array(items) => Ok(items
            .into_iter()
            .enumerate()
            .map(|(i, v)| (Value::Number(Number::from(i)), v))
            .collect()),
        Value::Object(fields) => {
            let mut pairs: Vec<(String, Value)> = fields.into_iter().collect();
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(pairs
                .into_iter()
                .map(|(k, v)| (Value::String(k), v))
                .collect())
        }
        other => Err(EvalError::soft(format!(
            "{what} needs a list, set, map or object, got {}",
            describe(&other)
        ))),
    }
}

/// The labels of a block generated by a `dynamic` block.
fn block_labels(value: &Value) -> EvalResult<Vec<BlockLabel>> {
    let Value::Array(items) = value else {
        return Err(EvalError::soft(format!(
            "labels must be a list of strings, got {}",
            describe(value)
        )));
    };
    items
        .iter()
        .map(|v| {
            to_string(v).map(BlockLabel::String).ok_or_else(|| {
                EvalError::soft(format!("a label must be a string, got {}", describe(v)))
            })
        })
        .collect()
}

/// `job "web" group "app"`: where a block sits, for messages.
fn block_path(parent: &str, identifier: &str, labels: &[BlockLabel]) -> String {
    let mut path = String::from(parent);
    if !path.is_empty() {
        path.push(' ');
    }
    path.push_str(identifier);
    for label in labels {
        path.push(' ');
        path.push_str(&quote(label.as_str()));
    }
    path
}

/// A string in double quotes, with quotes and backslashes escaped.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Adds the size of `value` to `size`, failing when the total passes [`MAX_SIZE`] or the value
/// holds an over-long string.
fn charge(size: usize, value: &Value) -> EvalResult<usize> {
    let total = size.saturating_add(size_of(value, MAX_SIZE));
    if total > MAX_SIZE {
        return Err(EvalError::soft(
            "the expression builds too large a value (more than a million values or 16 MiB)",
        ));
    }
    if let Value::String(s) = value {
        if s.len() > MAX_STRING {
            return Err(EvalError::soft(format!(
                "the expression builds a string longer than {MAX_STRING} bytes"
            )));
        }
    }
    Ok(total)
}

fn splat_elements(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

fn get_attr(value: Value, name: &str) -> EvalResult<Value> {
    match value {
        Value::Object(mut fields) => fields
            .swap_remove(name)
            .ok_or_else(|| EvalError::soft(format!("the object has no attribute \"{name}\""))),
        Value::Null => Err(EvalError::soft(format!(
            "cannot read attribute \"{name}\" of a null value"
        ))),
        other => Err(EvalError::soft(format!(
            "cannot read attribute \"{name}\" of a {}",
            type_name(&other)
        ))),
    }
}

fn index(value: Value, key: &Value) -> EvalResult<Value> {
    match value {
        Value::Array(mut items) => {
            let len = items.len();
            let i = to_number(key)
                .and_then(|n| n.as_u64())
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    EvalError::soft(format!(
                        "a list index must be a whole number, got {}",
                        describe(key)
                    ))
                })?;
            if i < len {
                Ok(items.swap_remove(i))
            } else {
                Err(EvalError::soft(format!(
                    "index {i} is out of range for a list of {len} elements"
                )))
            }
        }
        Value::Object(mut fields) => {
            let k = to_string(key).ok_or_else(|| {
                EvalError::soft(format!("a map key must be a string, got {}", describe(key)))
            })?;
            fields
                .swap_remove(&k)
                .ok_or_else(|| EvalError::soft(format!("the map has no key \"{k}\"")))
        }
        Value::Null => Err(EvalError::soft("cannot index a null value")),
        other => Err(EvalError::soft(format!(
            "cannot index a {}",
            type_name(&other)
        ))),
    }
}

fn operand_error(op: BinaryOperator, value: &Value, wanted: &str) -> EvalError {
    EvalError::soft(format!(
        "the operands of {} must be {wanted}, got {}",
        op.as_str(),
        describe(value)
    ))
}

fn unary(op: UnaryOperator, value: Value) -> EvalResult<Value> {
    match op {
        UnaryOperator::Not => to_bool(&value)
            .map(|b| Value::Bool(!b))
            .ok_or_else(|| EvalError::soft(format!("! needs a bool, got {}", describe(&value)))),
        UnaryOperator::Neg => to_number(&value)
            .map(|n| Value::Number(-n))
            .ok_or_else(|| EvalError::soft(format!("- needs a number, got {}", describe(&value)))),
    }
}

fn binary(op: BinaryOperator, left: Value, right: Value) -> EvalResult<Value> {
    use BinaryOperator as B;
    if let B::Eq | B::NotEq = op {
        let equal = left == right;
        return Ok(Value::Bool(if op == B::Eq { equal } else { !equal }));
    }
    let l = to_number(&left).ok_or_else(|| operand_error(op, &left, "numbers"))?;
    let r = to_number(&right).ok_or_else(|| operand_error(op, &right, "numbers"))?;
    let v = match op {
        B::Less => Value::Bool(l < r),
        B::LessEq => Value::Bool(l <= r),
        B::Greater => Value::Bool(l > r),
        B::GreaterEq => Value::Bool(l >= r),
        _ => Value::Number(arithmetic(op, l, r)?),
    };
    Ok(v)
}

/// Number arithmetic that reports overflow and division by zero instead of panicking: integers
/// stay exact while they fit in 64 bits, anything else goes through `f64`.
fn arithmetic(op: BinaryOperator, l: Number, r: Number) -> EvalResult<Number> {
    use BinaryOperator as B;
    if let (Some(a), Some(b)) = (l.as_i64(), r.as_i64()) {
        let exact = match op {
            B::Plus => a.checked_add(b),
            B::Minus => a.checked_sub(b),
            B::Mul => a.checked_mul(b),
            B::Mod if b == 0 => return Err(EvalError::soft("modulo by zero")),
            B::Mod => a.checked_rem(b),
            _ => None,
        };
        if let Some(n) = exact {
            return Ok(Number::from(n));
        }
    }
    let (a, b) = (
        l.as_f64().unwrap_or(f64::NAN),
        r.as_f64().unwrap_or(f64::NAN),
    );
    let result = match op {
        B::Plus => a + b,
        B::Minus => a - b,
        B::Mul => a * b,
        B::Div if b == 0.0 => return Err(EvalError::soft("division by zero")),
        B::Div => a / b,
        B::Mod if b == 0.0 => return Err(EvalError::soft("modulo by zero")),
        B::Mod => a % b,
        _ => {
            return Err(EvalError::soft(format!(
                "unsupported operator {}",
                op.as_str()
            )))
        }
    };
    Number::from_f64(result).ok_or_else(|| {
        EvalError::soft(format!(
            "the result of {} is not a finite number",
            op.as_str()
        ))
    })
}
