//! The shell's command language: a line is a list of pipelines.
//!
//! ```text
//! line     := pipeline ((';' | '&') pipeline)* [';' | '&'] ['#' comment]
//! pipeline := command ('|' command)*
//! command  := (word | '<' word | '>' word | '>>' word)+
//! ```
//!
//! * Words are split at blanks and at the operators `| < > >> ; &`, which need no blanks
//!   around them (`a|b>f` is three words and two operators).
//! * `'...'` quotes everything literally; `"..."` too, except `\"`, `\\`, `\$` and `$?`;
//!   outside quotes `\c` is `c`. Quoted pieces join the word around them (`a'b c'd` is
//!   one word `ab cd`); `''` is an empty word.
//! * `$?` (unquoted or in double quotes) becomes the last command's exit status.
//! * `#` where a word would start begins a comment to the end of the line.
//! * `&` runs the pipeline before it in the background; `;` just ends it. A separator
//!   with no pipeline before it is an error (as in sh); one at the end of the line is not.
//! * A command's redirections may stand anywhere among its words; a later one of the same
//!   direction replaces an earlier one. A redirection beats the pipe for that end. A
//!   command of redirections only (`> f`) opens (creates, truncates) the files and runs
//!   nothing.
//!
//! Pure: no system calls, host-tested.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Token {
    Word(String),
    /// `|`
    Pipe,
    /// `<`
    In,
    /// `>`
    Out,
    /// `>>`
    Append,
    /// `;`
    Semi,
    /// `&`
    Amp,
}

impl Token {
    /// How the token is written (words as themselves).
    pub fn as_str(&self) -> &str {
        match self {
            Token::Word(w) => w,
            Token::Pipe => "|",
            Token::In => "<",
            Token::Out => ">",
            Token::Append => ">>",
            Token::Semi => ";",
            Token::Amp => "&",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// The line ended inside a quote (the quote character).
    UnterminatedQuote(char),
    /// A token where it cannot stand (`"newline"` for the end of the line).
    Unexpected(String),
}

impl core::fmt::Display for ParseError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ParseError::UnterminatedQuote(q) => write!(f, "syntax error: unterminated {q} quote"),
            ParseError::Unexpected(t) => write!(f, "syntax error near unexpected token `{t}'"),
        }
    }
}

/// A redirection of standard output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    pub path: String,
    /// `>>`: append instead of truncating.
    pub append: bool,
}

/// One command of a pipeline: its words (`argv[0]` the program) and redirections.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Command {
    pub argv: Vec<String>,
    /// `< path`
    pub input: Option<String>,
    /// `> path` or `>> path`
    pub output: Option<Output>,
}

impl Command {
    fn is_empty(&self) -> bool {
        self.argv.is_empty() && self.input.is_none() && self.output.is_none()
    }
}

/// Commands joined by pipes, run together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pipeline {
    pub commands: Vec<Command>,
    /// Ended by `&`.
    pub background: bool,
}

/// Splits `line` into tokens, `$?` becoming `status`.
pub fn tokenize(line: &str, status: i32) -> Result<Vec<Token>, ParseError> {
    let mut toks = Vec::new();
    let mut word = String::new();
    // A word is open (even if empty, as after `''`).
    let mut open = false;
    let mut cs = line.chars().peekable();

    fn end(toks: &mut Vec<Token>, word: &mut String, open: &mut bool) {
        if *open {
            toks.push(Token::Word(core::mem::take(word)));
            *open = false;
        }
    }

    while let Some(c) = cs.next() {
        match c {
            ' ' | '\t' | '\r' | '\n' => end(&mut toks, &mut word, &mut open),
            '#' if !open => break,
            '|' | '<' | ';' | '&' | '>' => {
                end(&mut toks, &mut word, &mut open);
                toks.push(match c {
                    '|' => Token::Pipe,
                    '<' => Token::In,
                    ';' => Token::Semi,
                    '&' => Token::Amp,
                    _ if cs.peek() == Some(&'>') => {
                        cs.next();
                        Token::Append
                    }
                    _ => Token::Out,
                });
            }
            '\'' => {
                open = true;
                loop {
                    match cs.next() {
                        None => return Err(ParseError::UnterminatedQuote('\'')),
                        Some('\'') => break,
                        Some(q) => word.push(q),
                    }
                }
            }
            '"' => {
                open = true;
                loop {
                    match cs.next() {
                        None => return Err(ParseError::UnterminatedQuote('"')),
                        Some('"') => break,
                        Some('\\') => match cs.peek() {
                            Some(&e @ ('"' | '\\' | '$')) => {
                                cs.next();
                                word.push(e);
                            }
                            _ => word.push('\\'),
                        },
                        Some('$') if cs.peek() == Some(&'?') => {
                            cs.next();
                            word.push_str(&status.to_string());
                        }
                        Some(q) => word.push(q),
                    }
                }
            }
            '\\' => {
                open = true;
                word.push(cs.next().unwrap_or('\\'));
            }
            '$' if cs.peek() == Some(&'?') => {
                cs.next();
                open = true;
                word.push_str(&status.to_string());
            }
            c => {
                open = true;
                word.push(c);
            }
        }
    }
    end(&mut toks, &mut word, &mut open);
    Ok(toks)
}

/// Parses `line` into its pipelines, in order (`$?` becoming `status`). An empty or
/// comment-only line is an empty list.
pub fn parse(line: &str, status: i32) -> Result<Vec<Pipeline>, ParseError> {
    parse_tokens(tokenize(line, status)?)
}

/// The grammar over tokens (see the module docs).
pub fn parse_tokens(toks: Vec<Token>) -> Result<Vec<Pipeline>, ParseError> {
    let mut list = Vec::new();
    let mut commands: Vec<Command> = Vec::new();
    let mut cmd = Command::default();
    let mut it = toks.into_iter();
    let unexpected = |t: &Token| ParseError::Unexpected(t.as_str().to_string());
    while let Some(t) = it.next() {
        match t {
            Token::Word(w) => cmd.argv.push(w),
            Token::In | Token::Out | Token::Append => {
                let target = match it.next() {
                    Some(Token::Word(w)) => w,
                    Some(other) => return Err(unexpected(&other)),
                    None => return Err(ParseError::Unexpected("newline".to_string())),
                };
                match t {
                    Token::In => cmd.input = Some(target),
                    _ => cmd.output = Some(Output { path: target, append: t == Token::Append }),
                }
            }
            Token::Pipe => {
                if cmd.is_empty() {
                    return Err(unexpected(&t));
                }
                commands.push(core::mem::take(&mut cmd));
            }
            Token::Semi | Token::Amp => {
                if cmd.is_empty() {
                    return Err(unexpected(&t));
                }
                commands.push(core::mem::take(&mut cmd));
                list.push(Pipeline { commands: core::mem::take(&mut commands), background: t == Token::Amp });
            }
        }
    }
    if cmd.is_empty() {
        if !commands.is_empty() {
            // `a |` at the end of the line.
            return Err(ParseError::Unexpected("newline".to_string()));
        }
    } else {
        commands.push(cmd);
        list.push(Pipeline { commands, background: false });
    }
    Ok(list)
}

/// The program a command word names: itself if it holds a `/`, else `/bin/WORD`.
pub fn resolve(word: &str) -> String {
    if word.contains('/') {
        word.to_string()
    } else {
        let mut p = String::from("/bin/");
        p.push_str(word);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    fn w(s: &str) -> Token {
        Token::Word(s.to_string())
    }

    fn words(line: &str) -> Vec<String> {
        tokenize(line, 0)
            .unwrap()
            .into_iter()
            .map(|t| match t {
                Token::Word(s) => s,
                other => panic!("operator {other:?} in {line:?}"),
            })
            .collect()
    }

    fn cmd(argv: &[&str]) -> Command {
        Command { argv: argv.iter().map(|s| s.to_string()).collect(), input: None, output: None }
    }

    fn single(line: &str) -> Vec<Command> {
        let mut l = parse(line, 0).unwrap();
        assert_eq!(l.len(), 1, "{line:?}");
        let p = l.remove(0);
        assert!(!p.background);
        p.commands
    }

    #[test]
    fn blanks_split_words() {
        assert_eq!(words("  ls   -l\tdir  "), ["ls", "-l", "dir"]);
        assert_eq!(words(""), Vec::<String>::new());
        assert_eq!(words("   "), Vec::<String>::new());
        assert_eq!(words("echo a\r\n"), ["echo", "a"]);
    }

    #[test]
    fn operators_need_no_blanks() {
        assert_eq!(
            tokenize("a|b<c>d>>e;f&g", 0).unwrap(),
            vec![
                w("a"),
                Token::Pipe,
                w("b"),
                Token::In,
                w("c"),
                Token::Out,
                w("d"),
                Token::Append,
                w("e"),
                Token::Semi,
                w("f"),
                Token::Amp,
                w("g")
            ]
        );
        assert_eq!(tokenize("> > >>>", 0).unwrap(), vec![Token::Out, Token::Out, Token::Append, Token::Out]);
    }

    #[test]
    fn single_quotes_are_literal() {
        assert_eq!(words("echo 'a b|c;d>e $? \\n \"x\"'"), ["echo", "a b|c;d>e $? \\n \"x\""]);
    }

    #[test]
    fn double_quotes_keep_blanks_and_operators() {
        assert_eq!(words(r#"echo "a  b | c > d""#), ["echo", "a  b | c > d"]);
        assert_eq!(words(r#"echo "q\"q" "b\\s" "d\$" "n\n""#), ["echo", "q\"q", "b\\s", "d$", "n\\n"]);
        assert_eq!(words(r#"echo "it's""#), ["echo", "it's"]);
    }

    #[test]
    fn quoted_pieces_join_their_word() {
        assert_eq!(words(r#"a'b c'd"e f"g"#), ["ab cde fg"]);
        assert_eq!(words("x''y"), ["xy"]);
    }

    #[test]
    fn empty_quotes_are_an_empty_word() {
        assert_eq!(words("echo '' \"\" x"), ["echo", "", "", "x"]);
    }

    #[test]
    fn backslash_outside_quotes() {
        assert_eq!(words(r"echo a\ b \| \\ \'"), ["echo", "a b", "|", "\\", "'"]);
        assert_eq!(words("echo trailing\\"), ["echo", "trailing\\"]);
    }

    #[test]
    fn unterminated_quotes() {
        assert_eq!(tokenize("echo 'abc", 0), Err(ParseError::UnterminatedQuote('\'')));
        assert_eq!(tokenize("echo \"abc", 0), Err(ParseError::UnterminatedQuote('"')));
        assert_eq!(tokenize("echo \"abc\\\"", 0), Err(ParseError::UnterminatedQuote('"')));
        assert_eq!(
            parse("echo 'x", 0).unwrap_err().to_string(),
            "syntax error: unterminated ' quote"
        );
    }

    #[test]
    fn status_expansion() {
        assert_eq!(tokenize("echo $? \"[$?]\" '$?' \\$? $x $", 127).unwrap(), vec![
            w("echo"),
            w("127"),
            w("[127]"),
            w("$?"),
            w("$?"),
            w("$x"),
            w("$")
        ]);
        assert_eq!(words("echo a$?b"), ["echo", "a0b"]);
        assert_eq!(tokenize("exit $?", -1).unwrap(), vec![w("exit"), w("-1")]);
    }

    #[test]
    fn comments() {
        assert_eq!(words("# a comment"), Vec::<String>::new());
        assert_eq!(words("ls # list | files"), ["ls"]);
        assert_eq!(words("echo a#b '#c' \"#d\" \\#e"), ["echo", "a#b", "#c", "#d", "#e"]);
        assert_eq!(parse("   # only a comment", 0).unwrap(), vec![]);
        assert_eq!(tokenize("ls;# c", 0).unwrap(), vec![w("ls"), Token::Semi]);
    }

    #[test]
    fn simple_command() {
        assert_eq!(single("ls -l /bin"), vec![cmd(&["ls", "-l", "/bin"])]);
        assert_eq!(parse("", 0).unwrap(), vec![]);
    }

    #[test]
    fn pipelines() {
        assert_eq!(single("cat f | grep x | wc"), vec![cmd(&["cat", "f"]), cmd(&["grep", "x"]), cmd(&["wc"])]);
    }

    #[test]
    fn redirections_anywhere() {
        let c = single("< in cat > out -n");
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].argv, ["cat", "-n"]);
        assert_eq!(c[0].input.as_deref(), Some("in"));
        assert_eq!(c[0].output, Some(Output { path: "out".into(), append: false }));
        let c = single("echo hi >>log");
        assert_eq!(c[0].output, Some(Output { path: "log".into(), append: true }));
    }

    #[test]
    fn later_redirection_wins() {
        let c = single("echo x > a > b >> c < i < j");
        assert_eq!(c[0].output, Some(Output { path: "c".into(), append: true }));
        assert_eq!(c[0].input.as_deref(), Some("j"));
    }

    #[test]
    fn redirections_in_pipelines() {
        let c = single("sort < in | uniq > out");
        assert_eq!(c[0].input.as_deref(), Some("in"));
        assert_eq!(c[0].output, None);
        assert_eq!(c[1].input, None);
        assert_eq!(c[1].output, Some(Output { path: "out".into(), append: false }));
    }

    #[test]
    fn quoted_redirect_targets_and_operators_as_words() {
        let c = single("echo '>' \"|\" > 'my file'");
        assert_eq!(c[0].argv, ["echo", ">", "|"]);
        assert_eq!(c[0].output.as_ref().unwrap().path, "my file");
    }

    #[test]
    fn redirection_only_command() {
        let c = single("> empty");
        assert_eq!(c[0].argv, Vec::<String>::new());
        assert_eq!(c[0].output.as_ref().unwrap().path, "empty");
    }

    #[test]
    fn lists_and_background() {
        let l = parse("a ; b & c | d &  e;", 0).unwrap();
        assert_eq!(l.len(), 4);
        assert_eq!((l[0].commands.clone(), l[0].background), (vec![cmd(&["a"])], false));
        assert_eq!((l[1].commands.clone(), l[1].background), (vec![cmd(&["b"])], true));
        assert_eq!((l[2].commands.clone(), l[2].background), (vec![cmd(&["c"]), cmd(&["d"])], true));
        assert_eq!((l[3].commands.clone(), l[3].background), (vec![cmd(&["e"])], false));
        let l = parse("sleep 5&", 0).unwrap();
        assert_eq!(l, vec![Pipeline { commands: vec![cmd(&["sleep", "5"])], background: true }]);
    }

    #[test]
    fn syntax_errors() {
        let err = |line: &str| parse(line, 0).unwrap_err().to_string();
        assert_eq!(err("| a"), "syntax error near unexpected token `|'");
        assert_eq!(err("a | | b"), "syntax error near unexpected token `|'");
        assert_eq!(err("a |"), "syntax error near unexpected token `newline'");
        assert_eq!(err("a | ;"), "syntax error near unexpected token `;'");
        assert_eq!(err("; a"), "syntax error near unexpected token `;'");
        assert_eq!(err("a ;; b"), "syntax error near unexpected token `;'");
        assert_eq!(err("& a"), "syntax error near unexpected token `&'");
        assert_eq!(err("a & & b"), "syntax error near unexpected token `&'");
        assert_eq!(err("a >"), "syntax error near unexpected token `newline'");
        assert_eq!(err("a > | b"), "syntax error near unexpected token `|'");
        assert_eq!(err("a < > b"), "syntax error near unexpected token `>'");
        assert_eq!(err("a >> ;"), "syntax error near unexpected token `;'");
    }

    #[test]
    fn resolve_searches_bin_for_bare_names() {
        assert_eq!(resolve("ls"), "/bin/ls");
        assert_eq!(resolve("./prog"), "./prog");
        assert_eq!(resolve("/bin/ls"), "/bin/ls");
        assert_eq!(resolve("sub/prog"), "sub/prog");
    }
}
