"""runwatchd(1), generated from the command table as roff (man(7) macros).

`runwatchd man` prints it; man/runwatchd.1 is the same text, checked by a test and installed
with the package. No date in the header, so the same table always gives the same page.
"""

from __future__ import annotations

from runwatchd import __version__
from runwatchd.cli import spec


def _roff(text: str) -> str:
    """Plain text as roff: backslashes and dashes escaped, no line starting with a control
    character."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line
                     for line in text.split("\n"))


def _synopsis(cmd: spec.Command) -> str:
    parts = [f"\\fB{spec.PROG} {_roff(cmd.name)}\\fR"]
    for opt in spec.options_of(cmd):
        if opt.positional:
            word = f"\\fI{_roff(opt.shown)}\\fR"
            parts.append({"?": f"[{word}]", "*": f"[{word} ...]",
                          "+": f"{word} [{word} ...]"}.get(opt.nargs or "", word))
            continue
        flag = f"\\fB{_roff(opt.flags[0])}\\fR"
        if opt.takes_value:
            flag += f" \\fI{_roff(opt.shown)}\\fR"
        parts.append(f"[{flag}]")
    return " ".join(parts)


def _option(opt: spec.Opt) -> list[str]:
    if opt.positional:
        head = f"\\fI{_roff(opt.shown)}\\fR"
    else:
        value = f" \\fI{_roff(opt.shown)}\\fR" if opt.takes_value else ""
        head = ", ".join(f"\\fB{_roff(f)}\\fR{value}" for f in opt.flags)
    return [".TP", head, _roff(opt.help)]


def man_page() -> str:
    out = [f'.TH RUNWATCHD 1 "" "{spec.PROG} {__version__}" "User Commands"',
           ".SH NAME", f"{spec.PROG} \\- hot\\-folder daemon for Runway",
           ".SH SYNOPSIS",
           f"\\fB{spec.PROG}\\fR [\\fIGLOBAL OPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGUMENTS\\fR]",
           ".br", f"\\fB{spec.PROG} \\-\\-version\\fR",
           ".SH DESCRIPTION", _roff(spec.DESCRIPTION.replace("\n", " ")),
           ".PP",
           _roff("Global options may come before or after the command. Precedence: "
                 f"{spec.PRECEDENCE}."),
           ".SH GLOBAL OPTIONS"]
    for opt in spec.GLOBAL_OPTIONS:
        out += _option(opt)
    out += [".TP", "\\fB\\-\\-version\\fR", "show the version and exit",
            ".TP", "\\fB\\-h\\fR, \\fB\\-\\-help\\fR", "show help (also after a command) and exit",
            ".SH COMMANDS"]
    for cmd in spec.COMMANDS:
        out += [f'.SS "{cmd.name}"', _synopsis(cmd), ".PP",
                _roff(cmd.description or cmd.help[0].upper() + cmd.help[1:] + ".")]
        for opt in spec.options_of(cmd):
            out += _option(opt)
        out += [".PP", "Examples:", ".RS", ".nf"]
        out += [_roff(line) for line in cmd.examples]
        out += [".fi", ".RE"]
    out.append(".SH ENVIRONMENT")
    for name, meaning in spec.ENVIRONMENT:
        out += [".TP", f"\\fB{_roff(name)}\\fR", _roff(meaning)]
    out.append(".SH EXIT STATUS")
    for code, meaning in spec.EXIT_STATUS:
        out += [".TP", f"\\fB{code}\\fR", _roff(meaning)]
    out += [".SH FILES",
            ".TP", "\\fI/etc/runwatchd/config.toml\\fR", "the service's config",
            ".TP", "\\fI/var/lib/runwatchd\\fR", _roff("the service's journal (StateDirectory=)"),
            ".TP", "\\fI~/.config/runwatchd/config.toml\\fR", "a user's config",
            ".SH SEE ALSO", "\\fBsystemctl\\fR(1), \\fBjournalctl\\fR(1), "
            "\\fBsystemd.exec\\fR(5), \\fBsysusers.d\\fR(5)", ""]
    return "\n".join(out)
