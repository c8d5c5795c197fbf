// Package docs holds the project's documentation and the test that keeps it runnable: every command
// line in README.md and docs/*.md is checked against the built binaries (commands, flags, defaults)
// and against the AWS stack (outputs, parameters, names, paths), so the runbooks cannot drift from
// the code.
package docs

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/parking-newtaipei/parking-newtaipei/internal/clitest"
)

// doc is one markdown file.
type doc struct {
	name string // relative to the module root, for messages
	text string
}

// block is a fenced code block.
type block struct {
	doc  string
	line int // of the opening fence
	lang string
	body string
}

// span is an inline code span, or a fenced block's line.
type at struct {
	doc  string
	line int
}

func (a at) String() string { return fmt.Sprintf("%s:%d", a.doc, a.line) }

var shellLangs = map[string]bool{"sh": true, "bash": true, "shell": true, "console": true, "zsh": true, "shell-session": true}

// blocks returns the fenced code blocks of a markdown text.
func blocks(d doc) []block {
	var out []block
	lines := strings.Split(d.text, "\n")
	for i := 0; i < len(lines); i++ {
		trimmed := strings.TrimLeft(lines[i], " ")
		indent := len(lines[i]) - len(trimmed)
		fence := ""
		for _, f := range []string{"```", "~~~"} {
			if strings.HasPrefix(trimmed, f) {
				fence = f
			}
		}
		if fence == "" {
			continue
		}
		n := len(trimmed) - len(strings.TrimLeft(trimmed, fence[:1]))
		info := strings.Fields(trimmed[n:])
		b := block{doc: d.name, line: i + 1}
		if len(info) > 0 {
			b.lang = strings.ToLower(info[0])
		}
		var body []string
		for i++; i < len(lines); i++ {
			t := strings.TrimLeft(lines[i], " ")
			if strings.HasPrefix(t, strings.Repeat(fence[:1], n)) && strings.TrimSpace(strings.TrimLeft(t, fence[:1])) == "" {
				break
			}
			l := lines[i]
			if len(l)-len(strings.TrimLeft(l, " ")) >= indent {
				l = l[indent:] // blocks inside list items are indented with them
			}
			body = append(body, l)
		}
		b.body = strings.Join(body, "\n")
		out = append(out, b)
	}
	return out
}

// script returns what a shell block runs: a console block's prompted lines (and their
// continuations), any other block whole.
func script(b block) string {
	if b.lang != "console" && b.lang != "shell-session" {
		return b.body
	}
	var out []string
	cont := false
	for _, l := range strings.Split(b.body, "\n") {
		switch {
		case strings.HasPrefix(l, "$ "):
			out = append(out, l[2:])
		case cont:
			out = append(out, l)
		default:
			out = append(out, "")
			cont = false
			continue
		}
		cont = strings.HasSuffix(l, "\\")
	}
	return strings.Join(out, "\n")
}

// command is a simple command: its words, unquoted; $(...) and ${...} are kept as written.
type command struct {
	words []string
	line  int // within the script, from 0
}

// parseShell splits a shell script into simple commands. It knows quotes, backslashes, comments,
// line continuations, ; && || | & ( ), and command substitutions (whose commands it returns too). It
// is not a shell, but the docs are written for one, and everything it cannot read is reported.
func parseShell(src string) ([]command, error) {
	var (
		cmds []command
		cur  []string
		word strings.Builder
		in   bool // a word has started (possibly empty: '')
		line int
	)
	endWord := func() {
		if in {
			cur = append(cur, word.String())
		}
		word.Reset()
		in = false
	}
	endCmd := func() {
		endWord()
		if len(cur) > 0 {
			cmds = append(cmds, command{cur, line})
		}
		cur = nil
	}
	// substitution reads $( ... ) from src[i:] (i at '$'), returns its inner text and the index after it.
	substitution := func(i int) (string, int, error) {
		depth, j := 0, i+1
		var q rune
		for ; j < len(src); j++ {
			c := rune(src[j])
			switch {
			case q != 0:
				if c == q {
					q = 0
				} else if c == '\\' && q == '"' {
					j++
				}
			case c == '\'' || c == '"':
				q = c
			case c == '(':
				depth++
			case c == ')':
				depth--
				if depth == 0 {
					return src[i+2 : j], j + 1, nil
				}
			}
		}
		return "", 0, fmt.Errorf("unclosed $( at %q", src[i:min(len(src), i+30)])
	}
	sub := func(i int) (int, error) {
		inner, next, err := substitution(i)
		if err != nil {
			return 0, err
		}
		innerCmds, err := parseShell(inner)
		if err != nil {
			return 0, err
		}
		for _, c := range innerCmds {
			c.line += line
			cmds = append(cmds, c)
		}
		word.WriteString(src[i:next])
		in = true
		return next, nil
	}
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '\\' && i+1 < len(src) && src[i+1] == '\n':
			i += 2
			line++
		case c == '\\' && i+1 < len(src):
			word.WriteByte(src[i+1])
			in = true
			i += 2
		case c == '\n':
			endCmd()
			line++
			i++
		case c == ' ' || c == '\t':
			endWord()
			i++
		case c == '#' && !in:
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == ';' || c == '&' || c == '|' || c == '(' || c == ')':
			endCmd()
			i++
		case c == '\'':
			j := strings.IndexByte(src[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unclosed ' at %q", src[i:min(len(src), i+30)])
			}
			word.WriteString(src[i+1 : i+1+j])
			line += strings.Count(src[i+1:i+1+j], "\n")
			in = true
			i += j + 2
		case c == '"':
			in = true
			i++
			for ; i < len(src) && src[i] != '"'; i++ {
				switch {
				case src[i] == '\\' && i+1 < len(src) && strings.ContainsRune("\"\\$`", rune(src[i+1])):
					word.WriteByte(src[i+1])
					i++
				case src[i] == '$' && i+1 < len(src) && src[i+1] == '(':
					next, err := sub(i)
					if err != nil {
						return nil, err
					}
					i = next - 1
				default:
					if src[i] == '\n' {
						line++
					}
					word.WriteByte(src[i])
				}
			}
			if i >= len(src) {
				return nil, fmt.Errorf(`unclosed "`)
			}
			i++
		case c == '$' && i+1 < len(src) && src[i+1] == '(':
			next, err := sub(i)
			if err != nil {
				return nil, err
			}
			i = next
		default:
			word.WriteByte(c)
			in = true
			i++
		}
	}
	endCmd()
	return cmds, nil
}

// wrappers run the command after them (and shell keywords that precede one).
var wrappers = map[string]bool{"do": true, "then": true, "else": true, "env": true, "sudo": true, "time": true, "exec": true, "nohup": true, "!": true}

var assignment = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

// stripPrefix drops leading assignments and wrappers.
func stripPrefix(words []string) []string {
	for len(words) > 0 && (assignment.MatchString(words[0]) || wrappers[words[0]]) {
		words = words[1:]
	}
	return words
}

// invocation is a run of one of the programs found in the docs.
type invocation struct {
	where string
	prog  string
	args  []string
}

// programOf recognises `extractor ...`, `./loader ...`, `/loader ...`, `go run ./loader ...`.
func programOf(words []string) (string, []string, bool) {
	words = stripPrefix(words)
	if len(words) == 0 {
		return "", nil, false
	}
	if words[0] == "go" && len(words) > 2 && words[1] == "run" {
		rest := words[2:]
		for len(rest) > 0 && strings.HasPrefix(rest[0], "-") {
			rest = rest[1:]
		}
		if len(rest) > 0 {
			if p := path.Base(strings.TrimSuffix(rest[0], "/")); (p == "loader" || p == "extractor") && strings.HasPrefix(rest[0], ".") {
				return p, rest[1:], true
			}
		}
		return "", nil, false
	}
	if p := path.Base(words[0]); (p == "loader" || p == "extractor") && !strings.Contains(words[0], "$") {
		return p, words[1:], true
	}
	return "", nil, false
}

// stack is what the docs must agree with in deploy/parking.yaml.
type stack struct {
	outputs, params map[string]bool
	containers      map[string]string // container name -> program (the image's entrypoint)
	taskDefOutput   map[string]string // container name -> output holding its task definition
	logGroups       []string          // names with ${AWS::StackName}
	efsMount        string            // the loader's EFS mount path
	efsFiles        map[string]bool   // the stack's paths under it (PARKING_DB, ...)
	efsDirs         map[string]bool   // directories the stack uses under it
}

func loadStack(t *testing.T, file string) stack {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	get := func(n *yaml.Node, key string) *yaml.Node {
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return n.Content[i+1]
			}
		}
		return nil
	}
	keys := func(n *yaml.Node) map[string]bool {
		m := map[string]bool{}
		for i := 0; n != nil && i+1 < len(n.Content); i += 2 {
			m[n.Content[i].Value] = true
		}
		return m
	}
	top := root.Content[0]
	s := stack{outputs: keys(get(top, "Outputs")), params: keys(get(top, "Parameters")),
		containers: map[string]string{}, taskDefOutput: map[string]string{}, efsFiles: map[string]bool{}, efsDirs: map[string]bool{}}
	res := get(top, "Resources")
	for i := 0; i+1 < len(res.Content); i += 2 {
		name, body := res.Content[i].Value, res.Content[i+1]
		props := get(body, "Properties")
		switch get(body, "Type").Value {
		case "AWS::Logs::LogGroup":
			s.logGroups = append(s.logGroups, get(props, "LogGroupName").Value)
		case "AWS::ECS::TaskDefinition":
			c := get(props, "ContainerDefinitions").Content[0]
			cname := get(c, "Name").Value
			// The image runs /<program>: the health check names it, else the container is named for it.
			s.containers[cname] = cname
			if s.outputs[name+"Arn"] {
				s.taskDefOutput[cname] = name + "Arn"
			}
			efsVolume := ""
			for _, v := range get(props, "Volumes").Content {
				if get(v, "EFSVolumeConfiguration") != nil {
					efsVolume = get(v, "Name").Value
				}
			}
			mounts := get(c, "MountPoints")
			for j := 0; mounts != nil && j < len(mounts.Content); j++ {
				if efsVolume != "" && get(mounts.Content[j], "SourceVolume").Value == efsVolume {
					s.efsMount = get(mounts.Content[j], "ContainerPath").Value
				}
			}
			envs := get(c, "Environment")
			for j := 0; envs != nil && j < len(envs.Content); j++ {
				if v := get(envs.Content[j], "Value"); v != nil && v.Tag != "!Ref" && v.Tag != "!Sub" {
					if strings.HasPrefix(v.Value, "/mnt/") {
						s.efsFiles[v.Value] = true
					}
				}
			}
		}
	}
	if s.efsMount == "" {
		t.Fatal("no EFS mount found in the stack")
	}
	s.efsDirs[s.efsMount] = true
	for f := range s.efsFiles {
		if !strings.HasPrefix(f, s.efsMount+"/") {
			continue
		}
		if strings.HasSuffix(f, ".db") || strings.HasSuffix(f, ".json") || strings.HasSuffix(f, ".geojson") {
			s.efsDirs[path.Dir(f)] = true
		} else {
			s.efsDirs[f] = true // a directory, like PARKING_BACKUP_DIR
		}
	}
	return s
}

// checker holds what the docs are checked against and the problems found.
type checker struct {
	progs     map[string]*clitest.Program
	sourceEnv map[string]bool // read by the programs
	toolEnv   map[string]bool // read by the test harness and scripts (PARKING_TEST_S3_ENDPOINT, ...)
	stack     stack
	problems  []string
	invoked   int
	awsCmds   int
}

func (c *checker) errorf(where fmt.Stringer, format string, args ...any) {
	c.problems = append(c.problems, where.String()+": "+fmt.Sprintf(format, args...))
}

// checkInvocation checks one run of a program: the command exists, every flag is one of its flags.
func (c *checker) checkInvocation(where at, prog string, args []string, lenient bool) {
	c.invoked++
	p := c.progs[prog]
	if len(args) == 0 {
		c.errorf(where, "%s without a command", prog)
		return
	}
	switch args[0] {
	case "-version", "--version", "version", "-h", "-help", "--help", "help":
		return
	}
	if strings.HasPrefix(args[0], "<") || (lenient && strings.HasPrefix(args[0], "-")) {
		return // a placeholder in prose
	}
	cmd, ok := p.Commands[args[0]]
	if !ok && lenient && !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(strings.Trim(a, "[]"), "-") }) {
		return // prose in code, like the log message `loader started`
	}
	if !ok {
		c.errorf(where, "%s has no command %q (it has %s)", prog, args[0], strings.Join(sortedKeys(p.Commands), ", "))
		return
	}
	for i := 1; i < len(args); i++ {
		a := args[i]
		if lenient {
			a = strings.Trim(a, "[]")
		}
		if !strings.HasPrefix(a, "-") || a == "-" || a == "--" || (len(a) > 1 && (a[1] >= '0' && a[1] <= '9')) {
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name == "h" || name == "help" {
			continue
		}
		f, ok := cmd.Flags[name]
		if !ok {
			c.errorf(where, "%s %s has no flag -%s", prog, cmd.Name, name)
			continue
		}
		if !f.Bool && !hasValue {
			i++ // its value
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

var outRef = regexp.MustCompile(`\$\(out ([A-Za-z0-9]+)\)|OutputKey==['"]?([A-Za-z0-9]+)`)

// flagValue returns the word after --name in words ("" when absent).
func flagValue(words []string, name string) (string, bool) {
	for i, w := range words {
		if w == name && i+1 < len(words) {
			return words[i+1], true
		}
		if v, ok := strings.CutPrefix(w, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// checkAWS checks an aws CLI command against the stack.
func (c *checker) checkAWS(where at, words []string) {
	if len(words) < 3 {
		return
	}
	c.awsCmds++
	service, op := words[1], words[2]
	for _, opt := range []string{"--cluster", "--service", "--services"} {
		if v, ok := flagValue(words, opt); ok && service == "ecs" && !strings.HasPrefix(v, "$") {
			c.errorf(where, "aws ecs %s %s %s: a literal name; take it from the stack's outputs", op, opt, v)
		}
	}
	if service == "sqs" && op == "start-message-move-task" {
		if _, ok := flagValue(words, "--destination-arn"); !ok {
			c.errorf(where, "start-message-move-task without --destination-arn: messages the loader dead-lettered itself have no source queue to go back to")
		}
	}
	if v, ok := flagValue(words, "--filter-pattern"); ok {
		if strings.Contains(v, `":`) && !strings.HasPrefix(strings.TrimSpace(v), "{") {
			c.errorf(where, "filter pattern %s: for a JSON field use the JSON syntax, { $.field = \"value\" }", v)
		}
		if strings.HasPrefix(strings.TrimSpace(v), "{") && !regexp.MustCompile(`^\{\s*\(?\s*\$\.`).MatchString(strings.TrimSpace(v)) {
			c.errorf(where, "filter pattern %s: a JSON pattern starts with { $.", v)
		}
	}
	if service == "cloudformation" && (op == "deploy" || op == "create-stack" || op == "update-stack") {
		if i := slices.Index(words, "--parameter-overrides"); i >= 0 {
			for _, w := range words[i+1:] {
				if strings.HasPrefix(w, "--") {
					break
				}
				k, _, _ := strings.Cut(w, "=")
				if !c.stack.params[k] {
					c.errorf(where, "--parameter-overrides %s: the stack has no parameter %s", w, k)
				}
			}
		}
	}
	if service == "ecs" && op == "run-task" {
		td, _ := flagValue(words, "--task-definition")
		ov, ok := flagValue(words, "--overrides")
		if !ok {
			c.errorf(where, "run-task without --overrides: the task definition's own command is the service's")
			return
		}
		for _, need := range []string{"--network-configuration", "--launch-type"} {
			if _, ok := flagValue(words, need); !ok {
				c.errorf(where, "run-task without %s", need)
			}
		}
		var o struct {
			ContainerOverrides []struct {
				Name        string   `json:"name"`
				Command     []string `json:"command"`
				Environment []struct {
					Name string `json:"name"`
				} `json:"environment"`
			} `json:"containerOverrides"`
		}
		if err := json.Unmarshal([]byte(ov), &o); err != nil {
			c.errorf(where, "--overrides is not JSON: %v", err)
			return
		}
		for _, co := range o.ContainerOverrides {
			prog, ok := c.stack.containers[co.Name]
			if !ok {
				c.errorf(where, "container %q is not in the stack (it has %s)", co.Name, strings.Join(sortedKeys(c.stack.containers), ", "))
				continue
			}
			if out := c.stack.taskDefOutput[co.Name]; !strings.Contains(td, out) {
				c.errorf(where, "container %q runs in the task definition of output %s, not %s", co.Name, out, td)
			}
			if len(co.Command) > 0 {
				c.checkInvocation(where, prog, co.Command, false)
			}
			for _, e := range co.Environment {
				if (strings.HasPrefix(e.Name, "PARKING_") || strings.HasPrefix(e.Name, "HEALTHCHECK_")) && !c.progs[prog].Env()[e.Name] && !c.sourceEnv[e.Name] {
					c.errorf(where, "%s reads no variable %s", prog, e.Name)
				}
			}
		}
	}
}

var (
	efsPath     = regexp.MustCompile(`/mnt/efs(/[^\s"'` + "`" + `,;)\]|]*)?`)
	logGroupRef = regexp.MustCompile(`(/ecs/|/aws/events/|/aws/ecs/containerinsights/)[^\s"'` + "`" + `,;)\]|]*|/parking/(extractor|loader)\b`)
	inlineCode  = regexp.MustCompile("`([^`\n]+)`")
	defaultNote = regexp.MustCompile("`-([a-z0-9-]+)`[^`]{0,60}?\\bdefault:?\\s+`?([^\\s`,;)]+)")
	envName     = regexp.MustCompile(`\b(?:PARKING|HEALTHCHECK)_[A-Z0-9_]*[A-Z0-9]\b`)
)

// knownEnv reports whether a program reads the variable.
func (c *checker) knownEnv(name string) bool {
	if c.sourceEnv[name] || c.toolEnv[name] {
		return true
	}
	for _, p := range c.progs {
		if p.Env()[name] {
			return true
		}
	}
	return false
}

// stackNames are how the docs write the stack's name.
var stackNames = []string{"$STACK", "${STACK}", "<stack>", "parking-newtaipei"}

// checkText checks what prose and code alike say about the stack's names and paths, and every
// command line in inline code.
func (c *checker) checkText(d doc) {
	lines := strings.Split(d.text, "\n")
	for i, l := range lines {
		where := at{d.name, i + 1}
		for _, m := range efsPath.FindAllString(l, -1) {
			p := strings.TrimRight(m, ".:/")
			if p == "" || c.stack.efsDirs[p] || c.stack.efsFiles[p] || c.stack.efsDirs[path.Dir(p)] {
				continue
			}
			c.errorf(where, "%s: not a path of the stack (it mounts EFS at %s and uses %s)", m, c.stack.efsMount, strings.Join(sortedKeys(c.stack.efsDirs), ", "))
		}
		for _, m := range logGroupRef.FindAllString(l, -1) {
			m = strings.TrimRight(m, ".:")
			ok := false
			for _, g := range c.stack.logGroups {
				for _, n := range stackNames {
					ok = ok || m == strings.ReplaceAll(g, "${AWS::StackName}", n)
				}
			}
			if !ok {
				c.errorf(where, "%s is not a log group of the stack (%s)", m, strings.Join(c.stack.logGroups, ", "))
			}
		}
		for _, name := range envName.FindAllString(l, -1) {
			if !c.knownEnv(name) {
				c.errorf(where, "no program reads a variable %s", name)
			}
		}
		for _, m := range inlineCode.FindAllStringSubmatch(l, -1) {
			words := strings.Fields(strings.ReplaceAll(m[1], `\|`, "|"))
			if prog, args, ok := programOf(words); ok && len(words) > 1 {
				c.checkInvocation(where, prog, args, true)
			}
		}
	}
	// Defaults stated in prose: "`-batch` snapshots (default 64)". Paragraphs are read as one line.
	para := regexp.MustCompile(`\n[ \t]*`).ReplaceAllString(d.text, " ")
	for _, m := range defaultNote.FindAllStringSubmatch(para, -1) {
		c.checkDefault(at{d.name, 0}, m[1], m[2])
	}
}

// checkDefault compares a documented default with what -h says, for any command with that flag.
func (c *checker) checkDefault(where at, name, documented string) {
	var defaults []string
	for _, p := range c.progs {
		for _, cmd := range p.Commands {
			if f, ok := cmd.Flags[name]; ok {
				defaults = append(defaults, f.Default)
			}
		}
	}
	if len(defaults) == 0 {
		return // an unknown flag is reported where it is used
	}
	for _, d := range defaults {
		if sameValue(d, documented) {
			return
		}
	}
	where.line = 0
	c.errorf(where, "-%s: documented default %q, the code's is %q", name, documented, defaults[0])
}

func sameValue(code, doc string) bool {
	doc = strings.Trim(doc, "\"'`")
	if code == doc {
		return true
	}
	if code == "" {
		return doc == "0" || doc == "false" || doc == "empty" || doc == `""`
	}
	a, err1 := time.ParseDuration(code)
	b, err2 := time.ParseDuration(doc)
	return err1 == nil && err2 == nil && a == b
}

// checkShell checks every command of a shell block.
func (c *checker) checkShell(b block) {
	cmds, err := parseShell(script(b))
	if err != nil {
		c.errorf(at{b.doc, b.line}, "shell block cannot be read: %v", err)
		return
	}
	body := script(b)
	for _, m := range outRef.FindAllStringSubmatch(body, -1) {
		name := m[1] + m[2]
		if !c.stack.outputs[name] {
			c.errorf(at{b.doc, b.line}, "the stack has no output %s", name)
		}
	}
	for _, cmd := range cmds {
		where := at{b.doc, b.line + 1 + cmd.line}
		words := stripPrefix(cmd.words)
		if prog, args, ok := programOf(words); ok {
			c.checkInvocation(where, prog, args, false)
			continue
		}
		if len(words) > 0 && words[0] == "aws" {
			c.checkAWS(where, words)
		}
	}
}

// checkCoverage: every flag and environment variable of every command is documented in the README's
// configuration section or in CONTRACTS.md.
func (c *checker) checkCoverage(readme, contracts doc) {
	config := readme.text
	if i := strings.Index(config, "\n## Configuration"); i >= 0 {
		config = config[i+1:]
		if j := strings.Index(config[3:], "\n## "); j >= 0 {
			config = config[:j+3]
		}
	} else {
		c.errorf(at{readme.name, 0}, "no ## Configuration section")
	}
	text := config + "\n" + contracts.text
	documented := func(token string) bool {
		return regexp.MustCompile(`(^|[^A-Za-z0-9_-])` + regexp.QuoteMeta(token) + `([^A-Za-z0-9_-]|$)`).MatchString(text)
	}
	seen := map[string]bool{}
	for _, pname := range sortedKeys(c.progs) {
		p := c.progs[pname]
		for _, cname := range sortedKeys(p.Commands) {
			for _, fname := range sortedKeys(p.Commands[cname].Flags) {
				f := p.Commands[cname].Flags[fname]
				if !seen["-"+f.Name] && !documented("-"+f.Name) {
					c.errorf(at{contracts.name, 0}, "flag -%s (%s %s) is in neither README.md's configuration section nor CONTRACTS.md", f.Name, pname, cname)
				}
				seen["-"+f.Name] = true
				if f.Env != "" && !seen[f.Env] && !documented(f.Env) {
					c.errorf(at{contracts.name, 0}, "variable %s (-%s of %s %s) is in neither README.md's configuration section nor CONTRACTS.md", f.Env, f.Name, pname, cname)
				}
				seen[f.Env] = true
			}
		}
	}
	for _, e := range sortedKeys(c.sourceEnv) {
		if !seen[e] && !documented(e) {
			c.errorf(at{contracts.name, 0}, "variable %s (read by the code) is in neither README.md's configuration section nor CONTRACTS.md", e)
		}
	}
}

// slug is GitHub's anchor for a heading: lower case, punctuation dropped (full-width too), spaces to hyphens.
func slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

var (
	heading = regexp.MustCompile(`(?m)^#{1,6} (.+)$`)
	mdLink  = regexp.MustCompile(`\]\(([^)\s]*)\)`)
)

// anchors returns the headings' anchors of a document (outside code blocks).
func anchors(d doc) map[string]bool {
	text := d.text
	for _, b := range blocks(d) {
		text = strings.Replace(text, b.body, "", 1)
	}
	out := map[string]bool{}
	for _, m := range heading.FindAllStringSubmatch(text, -1) {
		h := strings.ReplaceAll(m[1], "`", "")
		a := slug(h)
		for n := 1; out[a]; n++ {
			a = fmt.Sprintf("%s-%d", slug(h), n)
		}
		out[a] = true
	}
	return out
}

// checkLinks: every link to a document of the set, and to a heading in it, resolves.
func (c *checker) checkLinks(docs []doc) {
	byName := map[string]doc{}
	for _, d := range docs {
		byName[d.name] = d
	}
	for _, d := range docs {
		for i, l := range strings.Split(d.text, "\n") {
			for _, m := range mdLink.FindAllStringSubmatch(l, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") || target == "" {
					continue
				}
				file, frag, _ := strings.Cut(target, "#")
				name := d.name
				if file != "" {
					name = path.Clean(path.Join(path.Dir(d.name), file))
				}
				td, ok := byName[name]
				if !ok {
					if _, err := os.Stat(filepath.Join("..", filepath.FromSlash(name))); err != nil {
						c.errorf(at{d.name, i + 1}, "link %s: no such file", target)
					}
					continue
				}
				if frag != "" && !anchors(td)[frag] {
					c.errorf(at{d.name, i + 1}, "link %s: %s has no heading #%s", target, td.name, frag)
				}
			}
		}
	}
}

func (c *checker) checkAll(docs []doc) {
	for _, d := range docs {
		c.checkText(d)
		for _, b := range blocks(d) {
			if shellLangs[b.lang] {
				c.checkShell(b)
			}
		}
	}
}

func readDocs(t *testing.T) []doc {
	t.Helper()
	files, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append([]string{"../README.md"}, files...)
	var docs []doc
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(f, "../")
		if !strings.HasPrefix(f, "../") {
			name = "docs/" + f
		}
		docs = append(docs, doc{name, string(b)})
	}
	return docs
}

func newChecker(t *testing.T) *checker {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]bool{}
	for _, e := range clitest.SourceEnv(t, root, "extractor", "loader", "shared") {
		env[e] = true
	}
	tools := map[string]bool{}
	for _, dir := range []string{"../scripts", "../internal"} {
		err := filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			for _, n := range envName.FindAllString(string(b), -1) {
				tools[n] = true
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return &checker{progs: clitest.Build(t, root), sourceEnv: env, toolEnv: tools, stack: loadStack(t, "../deploy/parking.yaml")}
}

// TestDocsRunAsWritten is the docs' test: every command line in README.md and docs/*.md runs as
// written against the built binaries and the stack, and every flag and variable is documented.
func TestDocsRunAsWritten(t *testing.T) {
	c := newChecker(t)
	docs := readDocs(t)
	c.checkAll(docs)
	var readme, contracts doc
	for _, d := range docs {
		switch d.name {
		case "README.md":
			readme = d
		case "docs/CONTRACTS.md":
			contracts = d
		}
	}
	c.checkCoverage(readme, contracts)
	c.checkLinks(docs)
	for _, p := range c.problems {
		t.Error(p)
	}
	// A parser that found nothing would pass anything.
	if c.invoked < 40 || c.awsCmds < 30 {
		t.Errorf("only %d program invocations and %d aws commands found: the reader is broken", c.invoked, c.awsCmds)
	}
	if !t.Failed() {
		t.Logf("%d documents: %d program invocations and %d aws commands checked", len(docs), c.invoked, c.awsCmds)
	}
}

// The errors the review of issue 15 found in the docs, each in a small document: the test must report
// every one of them, so that none can come back.
func TestDocsTestCatchesTheReviewsErrors(t *testing.T) {
	c := newChecker(t)
	cases := map[string]string{
		"a flag that does not exist":     "```sh\nloader serve -reconcile 24h -wait-lock -batch 10\n```\n",
		"a command that does not exist":  "```sh\ngo run ./loader rebuild -from 2026-01-01\n```\n",
		"a literal cluster name":         "```sh\naws ecs update-service --cluster parking --service parking-loader --desired-count 0\n```\n",
		"a log group of another stack":   "```sh\naws logs tail /parking/loader --follow\n```\n",
		"the wrong backup directory":     "- With no loader running: `loader backup -out /mnt/efs/backup/parking.db`.\n",
		"a wrong default":                "one goroutine applies, `-batch` snapshots\n  (default 64) per transaction.\n",
		"an invalid filter pattern":      "```bash\naws logs tail /ecs/$STACK/extractor --since 1h --filter-pattern '\"level\":\"ERROR\"'\n```\n",
		"a redrive without destination":  "```bash\naws sqs start-message-move-task --source-arn $(aws sqs get-queue-attributes --queue-url $DLQ \\\n  --attribute-names QueueArn --query Attributes.QueueArn --output text)\n```\n",
		"an output that does not exist":  "```bash\naws logs tail $(out LoaderLogGroup) --follow\n```\n",
		"a variable that does not exist": "Set `PARKING_RECONCILE_WINDOW=48h` to reconcile.\n",
		"a parameter that does not exist": "```bash\naws cloudformation deploy --stack-name $STACK --template-file deploy/parking.yaml \\\n" +
			"  --parameter-overrides SubnetIds=$SUBNETS AlarmEmail=ops@example.com\n```\n",
		"a run-task with a wrong flag": "```bash\naws ecs run-task --cluster $CLUSTER --task-definition $(out LoaderTaskDefinitionArn) --launch-type FARGATE \\\n" +
			"  --network-configuration \"$NET\" \\\n  --overrides '{\"containerOverrides\":[{\"name\":\"loader\",\"command\":[\"backfill\",\"-since\",\"2026-01-01\"]}]}'\n```\n",
		"a run-task in the wrong task definition": "```bash\naws ecs run-task --cluster $CLUSTER --task-definition $(out ExtractorTaskDefinitionArn) --launch-type FARGATE \\\n" +
			"  --network-configuration \"$NET\" --overrides '{\"containerOverrides\":[{\"name\":\"loader\",\"command\":[\"stats\"]}]}'\n```\n",
	}
	for name, text := range cases {
		c.problems = nil
		c.checkAll([]doc{{name: "fixture", text: text}})
		if len(c.problems) == 0 {
			t.Errorf("%s: not reported", name)
		} else {
			t.Logf("%s: %s", name, c.problems[0])
		}
	}
	// Links: to a missing heading, to a missing file; a heading in Chinese with full-width punctuation resolves.
	c.problems = nil
	c.checkLinks([]doc{
		{"docs/A.md", "## 7. 監控、日誌與警示\n\nSee [x](#7-監控日誌與警示), [y](B.md#the-dead-letter-queue), [z](B.md#no-such), [w](NOPE.md).\n"},
		{"docs/B.md", "## The dead-letter queue\n"},
	})
	if len(c.problems) != 2 || !strings.Contains(c.problems[0], "#no-such") || !strings.Contains(c.problems[1], "NOPE.md") {
		t.Errorf("link check: %v, want the missing heading and the missing file", c.problems)
	}
	// An undocumented flag: a CONTRACTS.md without the backfill flags.
	c.problems = nil
	c.checkCoverage(doc{"README.md", "## Configuration\n\n| `-store` |\n"}, doc{"docs/CONTRACTS.md", "`-db`"})
	if !slices.ContainsFunc(c.problems, func(p string) bool { return strings.Contains(p, "flag -batch") }) {
		t.Errorf("an undocumented -batch is not reported: %v", c.problems)
	}
	// And what is right passes.
	c.problems = nil
	c.checkAll([]doc{{name: "fixture", text: "```sh\n" +
		"go run ./loader serve -drain -reconcile 48h   # comment -nonsense\n" +
		"aws logs tail /ecs/$STACK/extractor --since 1h --filter-pattern '{ $.level = \"ERROR\" }'\n" +
		"```\n- `loader backup -out /mnt/efs/backups/manual.db`\n"}})
	if len(c.problems) > 0 {
		t.Errorf("correct commands reported: %v", c.problems)
	}
}

func TestParseShell(t *testing.T) {
	cmds, err := parseShell("A=1 env B=2 loader serve \\\n  -drain # no -x here\n" +
		`echo "$(loader stats -json | jq .lots)" && for x in a b; do extractor fetch -dataset "$x"; done` + "\n" +
		`aws ecs run-task --overrides '{"a":["b c"]}'`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range cmds {
		got = append(got, strings.Join(c.words, "|"))
	}
	want := []string{
		"A=1|env|B=2|loader|serve|-drain",
		"loader|stats|-json", "jq|.lots", `echo|$(loader stats -json | jq .lots)`,
		"for|x|in|a|b", "do|extractor|fetch|-dataset|$x", "done",
		`aws|ecs|run-task|--overrides|{"a":["b c"]}`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("parsed\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
