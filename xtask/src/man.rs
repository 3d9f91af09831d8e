//! semprep(8): NAME, SYNOPSIS, DESCRIPTION, COMMANDS, OPTIONS and the
//! variables of ENVIRONMENT come from the clap definition (clap_mangen
//! renders what it knows, the rest is built here from the same `Arg`s); the
//! prose clap does not know (EXIT STATUS, FILES, EXAMPLES, SEE ALSO) is in
//! packaging/man/semprep.8.in, which holds the two markers replaced here.

use crate::Ctx;
use crate::util::{self, Result};
use clap::{Arg, ArgAction, Command, CommandFactory};
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, italic, roman};
use std::path::PathBuf;

const TEMPLATE: &str = include_str!("../../packaging/man/semprep.8.in");

/// semprep's version, from the same definition (`semprep --version`).
pub fn version() -> String {
    semprep::cli::Cli::command()
        .get_version()
        .expect("semprep's clap definition has a version")
        .to_owned()
}

pub fn write(ctx: &Ctx) -> Result<Vec<PathBuf>> {
    let date = util::date(util::source_date_epoch(&ctx.root)?, "%Y-%m-%d")?;
    let path = ctx.dist.join("semprep.8");
    util::write(&path, render(&date), 0o644)?;
    Ok(vec![path])
}

/// The whole page, as roff.
pub fn render(date: &str) -> String {
    let mut cmd = semprep::cli::Cli::command();
    cmd.build(); // adds --help and --version, as `semprep --help` shows them
    let man = Man::new(cmd.clone())
        .title("SEMPREP")
        .section("8")
        .date(date)
        .manual("System Administration");
    let mut head = Vec::new();
    man.render_title(&mut head).expect("writing to a Vec");
    man.render_name_section(&mut head)
        .expect("writing to a Vec");
    man.render_synopsis_section(&mut head)
        .expect("writing to a Vec");
    man.render_description_section(&mut head)
        .expect("writing to a Vec");
    let options = Options::of(&cmd);
    let mut clap = String::from_utf8(head).expect("roff is UTF-8");
    clap.push_str(&commands(&cmd, &options));
    clap.push_str(&options.render());

    let page = TEMPLATE.replacen("@CLAP@\n", &clap, 1).replacen(
        "@ENVIRONMENT@\n",
        &options.environment(),
        1,
    );
    assert!(
        !page.contains("@CLAP@") && !page.contains("@ENVIRONMENT@"),
        "packaging/man/semprep.8.in must hold @CLAP@ and @ENVIRONMENT@ once each, on lines of their own"
    );
    assert!(
        TEMPLATE.contains("@CLAP@\n") && TEMPLATE.contains("@ENVIRONMENT@\n"),
        "packaging/man/semprep.8.in lacks @CLAP@ or @ENVIRONMENT@"
    );
    dedup_preamble(&page)
}

/// Each clap_mangen and roff rendering starts with the same two lines that
/// define the apostrophe string; the page needs them once, at the top.
fn dedup_preamble(page: &str) -> String {
    let mut seen = std::collections::HashSet::new();
    let mut out = String::new();
    for line in page.lines() {
        let preamble = line.starts_with(".ie \\n(.g .ds Aq") || line.starts_with(".el .ds Aq");
        if !preamble || seen.insert(line.to_owned()) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The subcommands a user runs (not clap's `help`).
fn subcommands(cmd: &Command) -> impl Iterator<Item = &Command> {
    cmd.get_subcommands().filter(|s| s.get_name() != "help")
}

fn is_option(a: &Arg) -> bool {
    !a.is_positional() && !a.is_hide_set()
}

/// Every option once, in the order `semprep run --help` shows them first,
/// with the subcommands that take it.
struct Options<'a> {
    list: Vec<(&'a Arg, Vec<&'a str>)>,
}

impl<'a> Options<'a> {
    fn of(cmd: &'a Command) -> Options<'a> {
        let mut list: Vec<(&Arg, Vec<&str>)> = Vec::new();
        // Every command has --help; its wording differs a little between
        // them (clap's), so the page shows the top level's.
        let mut with_help = Vec::new();
        for sub in subcommands(cmd) {
            for arg in sub.get_arguments().filter(|a| is_option(a)) {
                if is_help(arg) {
                    with_help.push(sub.get_name());
                    continue;
                }
                match list.iter_mut().find(|(a, _)| a.get_id() == arg.get_id()) {
                    Some((known, subs)) => {
                        // One option, one meaning: the page describes it once.
                        assert_eq!(
                            signature(known),
                            signature(arg),
                            "--{} differs between subcommands: the man page cannot describe it once",
                            arg.get_id()
                        );
                        subs.push(sub.get_name());
                    }
                    None => list.push((arg, vec![sub.get_name()])),
                }
            }
        }
        // The top level's own: --help (for every command) and --version.
        for arg in cmd.get_arguments().filter(|a| is_option(a)) {
            let subs = if is_help(arg) {
                with_help.clone()
            } else {
                vec![]
            };
            list.push((arg, subs));
        }
        Options { list }
    }

    /// The OPTIONS section, rendered by clap_mangen from the same `Arg`s,
    /// each told which subcommands take it.
    fn render(&self) -> String {
        let mut all = Command::new("semprep")
            // clap wants a version for --version; only the option is rendered.
            .version("-")
            .disable_help_flag(true)
            .disable_version_flag(true);
        let every: Vec<&str> = self.list.iter().flat_map(|(_, s)| s.clone()).collect();
        for (arg, subs) in &self.list {
            let help = arg
                .get_long_help()
                .or(arg.get_help())
                .map(|h| h.to_string())
                .unwrap_or_default();
            let which = if subs.is_empty() {
                "Without a command only.".to_owned()
            } else if subs.len() == subcommands_count(&every) {
                "Every command.".to_owned()
            } else {
                format!("Commands: {}.", subs.join(", "))
            };
            all = all.arg((*arg).clone().long_help(format!("{help}. {which}")));
        }
        let mut out = Vec::new();
        Man::new(all)
            .render_options_section(&mut out)
            .expect("writing to a Vec");
        // clap_mangen separates the help from "Possible values:" with an
        // empty line between two breaks, which mandoc -T lint flags; one
        // vertical space says the same.
        String::from_utf8(out)
            .expect("roff is UTF-8")
            .replace("\n.br\n\n.br\n", "\n.sp\n")
    }

    /// The variables, one entry each: the option it stands for, the values,
    /// the default.
    fn environment(&self) -> String {
        let mut roff = Roff::new();
        for (arg, _) in &self.list {
            let Some(var) = arg.get_env() else { continue };
            let long = arg
                .get_long()
                .expect("an option with a variable has a long name");
            roff.control("TP", []);
            roff.text([bold(var.to_string_lossy().into_owned())]);
            let mut text = vec![roman("Same as "), bold(format!("--{long}"))];
            match values(arg) {
                Value::Bool => text.push(roman(": true or false (also yes/no, on/off, 1/0)")),
                Value::OneOf(v) => text.push(roman(format!(": {v}"))),
                Value::Named(n) => text.extend([roman(" "), italic(n)]),
            }
            text.push(roman(format!(". Default: {}.", default(arg))));
            roff.text(text);
        }
        roff.render()
    }
}

/// How many distinct subcommands take some option (all of them, normally).
fn subcommands_count(every: &[&str]) -> usize {
    let mut names = every.to_vec();
    names.sort_unstable();
    names.dedup();
    names.len()
}

/// What must be equal for two subcommands' `Arg`s to be one option.
fn signature(a: &Arg) -> String {
    format!(
        "{:?} {:?} {:?} {:?} {:?} {:?} {:?}",
        a.get_long(),
        a.get_short(),
        a.get_help().map(|h| h.to_string()),
        a.get_env(),
        a.get_default_values(),
        a.get_value_names(),
        a.get_possible_values()
            .iter()
            .map(|v| v.get_name().to_owned())
            .collect::<Vec<_>>(),
    )
}

fn is_help(a: &Arg) -> bool {
    matches!(
        a.get_action(),
        ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong
    )
}

fn takes_value(a: &Arg) -> bool {
    !matches!(
        a.get_action(),
        ArgAction::SetTrue
            | ArgAction::SetFalse
            | ArgAction::Count
            | ArgAction::Help
            | ArgAction::HelpShort
            | ArgAction::HelpLong
            | ArgAction::Version
    )
}

enum Value {
    /// A flag: BoolishValueParser, as every SEMPREP_* flag uses.
    Bool,
    /// A value enum's values, comma-separated.
    OneOf(String),
    /// Any value, named as `--help` names it.
    Named(String),
}

fn values(a: &Arg) -> Value {
    if !takes_value(a) {
        return Value::Bool;
    }
    let possible = a.get_possible_values();
    if possible.is_empty() {
        let names = a.get_value_names().unwrap_or_default();
        return Value::Named(
            names
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    Value::OneOf(
        possible
            .iter()
            .map(|v| v.get_name().to_owned())
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// The default, from clap's default value, else the help's own
/// "[default: …]" (for defaults computed at run time), else none.
fn default(a: &Arg) -> String {
    if !takes_value(a) {
        return "false".into();
    }
    let defaults = a.get_default_values();
    if !defaults.is_empty() {
        return defaults
            .iter()
            .map(|d| d.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(",");
    }
    let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
    if let Some(start) = help.find("[default: ")
        && let Some(len) = help[start..].find(']')
    {
        return help[start + "[default: ".len()..start + len].to_owned();
    }
    "unset".into()
}

/// COMMANDS: each subcommand's usage line, what it does, its options.
fn commands(cmd: &Command, options: &Options) -> String {
    let mut roff = Roff::new();
    roff.control("SH", ["COMMANDS"]);
    roff.text([
        roman("With no command, semprep runs "),
        bold("semprep run"),
        roman("."),
    ]);
    let mut built = cmd.clone();
    for sub in subcommands(cmd) {
        let usage = built
            .find_subcommand_mut(sub.get_name())
            .expect("a subcommand of the same definition")
            .render_usage()
            .to_string();
        let usage = usage.trim_start_matches("Usage:").trim();
        roff.control("TP", []);
        roff.text([bold(usage)]);
        let about = sub
            .get_long_about()
            .or(sub.get_about())
            .map(|a| a.to_string())
            .unwrap_or_default();
        roff.text([roman(format!("{about}."))]);
        for pos in sub.get_arguments().filter(|a| a.is_positional()) {
            let name = pos
                .get_value_names()
                .map(|n| n.join(" "))
                .unwrap_or_else(|| pos.get_id().to_string());
            let help = pos.get_help().map(|h| h.to_string()).unwrap_or_default();
            roff.control("br", []);
            roff.text([italic(name), roman(format!(": {help}."))]);
        }
        if let Some(after) = sub.get_after_help() {
            roff.control("br", []);
            roff.text([roman(after.to_string())]);
        }
        let mut names: Vec<String> = Vec::new();
        for (arg, subs) in &options.list {
            if subs.contains(&sub.get_name()) {
                names.push(format!(
                    "--{}",
                    arg.get_long().expect("options have long names")
                ));
            }
        }
        roff.control("br", []);
        roff.text([roman(format!("Options: {}.", names.join(", ")))]);
    }
    roff.render()
}
