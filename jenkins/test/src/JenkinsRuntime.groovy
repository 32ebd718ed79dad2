/* groovylint-disable CatchThrowable, Instanceof, ConfusingMethodName */
// Catching Throwable is Jenkins' semantics here: whatever a stage throws fails that stage.
import groovy.util.slurpersupport.GPathResult
import org.codehaus.groovy.control.CompilerConfiguration

/**
 * A Jenkins stand-in that runs a Declarative Pipeline and the shared library for real, in
 * one process: `sh` runs bash scripts on this machine, `junit` parses the XML, `input`
 * answers as the configured approver, `withCredentials` binds the configured credentials,
 * and `lock`, `milestone`, `archiveArtifacts` record what they were asked.
 *
 * What it models of Jenkins, because the assertions depend on it:
 *   - an executor exists only inside a stage with an agent: `sh` outside one fails, and
 *     `input` records whether an executor was held while waiting;
 *   - environment precedence: withEnv/withCredentials > stage environment/input > global
 *     (pipeline `environment`, `env.X = ...`) > the agent's own variables;
 *   - a failing stage fails its parent and skips every later stage; post conditions run;
 *   - `junit` with failures makes the build UNSTABLE, `error` and non-zero `sh` make it FAILURE.
 */
class JenkinsRuntime {

    // --- configuration, set by the test -------------------------------------------------
    File workspace
    File libraryRoot                 // the repository holding the library (libraryPath is under it)
    Map<String, String> agentEnv = [:]   // the agent's variables (node properties)
    Map<String, String> baseEnv = [:]    // the process environment sh starts from
    Map<String, List<String>> credentials = [:]  // id -> [username, password]
    String approver = 'approver'
    Map<String, String> paramOverrides = [:]
    File logFile

    // --- what happened -----------------------------------------------------------------
    List<String> events = []
    List<Map> stageLog = []          // [name, path, status]
    List<Map> shCalls = []           // [script, exit, output, env]
    List<Map> inputs = []
    List<Map> locks = []
    List<Map> milestones = []
    List<Map> archived = []          // [pattern, files]
    List<Map> junitReports = []      // [pattern, files, tests, failures, errors, skipped]
    List<Map> libraries = []
    Map<String, Object> pipelineOptions = [:]
    Throwable failure
    CurrentBuild currentBuild = new CurrentBuild()
    Map params = [:]

    // --- state ---------------------------------------------------------------------------
    private final Map<String, String> globalEnv = [:]
    private final List<Map<String, String>> overlays = []
    private int executors = 0
    private final Map<String, Script> vars = [:]
    private File varsDir
    private PipelineScript mainScript
    final EnvVars envVars = new EnvVars(this)

    static class PipelineError extends RuntimeException {
        PipelineError(String message) { super(message) }
    }

    /** What `sh` throws on a non-zero exit, as Jenkins' AbortException says it. */
    static class ScriptFailure extends RuntimeException {
        int exitCode
        ScriptFailure(int code) { super("script returned exit code ${code}"); exitCode = code }
    }

    static class CurrentBuild {
        String description
        String displayName
        String result
        int number
    }

    /** `env`: reads through every scope, writes global variables. */
    static class EnvVars extends GroovyObjectSupport {
        private final JenkinsRuntime rt
        EnvVars(JenkinsRuntime rt) { this.rt = rt }
        @Override Object getProperty(String name) { return rt.lookupEnv(name) }
        @Override void setProperty(String name, Object value) { rt.setGlobalEnv(name, value) }
        Object getAt(String name) { return rt.lookupEnv(name) }
        void putAt(String name, Object value) { rt.setGlobalEnv(name, value) }
    }

    // --- running a Jenkinsfile -------------------------------------------------------------

    CompilerConfiguration compilerConfiguration() {
        CompilerConfiguration cc = new CompilerConfiguration()
        cc.scriptBaseClass = PipelineScript.name
        return cc
    }

    /** Runs a Jenkinsfile to the end; the build's result is in currentBuild.result. */
    void runJenkinsfile(File jenkinsfile, int buildNumber, String jobName) {
        currentBuild.number = buildNumber
        globalEnv.BUILD_NUMBER = buildNumber.toString()
        globalEnv.JOB_NAME = jobName
        globalEnv.BUILD_URL = "https://jenkins.example.invalid/job/${jobName}/${buildNumber}/".toString()
        Binding binding = new Binding()
        binding.setVariable('__rt', this)
        GroovyShell shell = new GroovyShell(PipelineScript.classLoader, binding, compilerConfiguration())
        if (logFile != null) {
            logFile.text = ''
        }
        mainScript = (PipelineScript) shell.parse(jenkinsfile)
        log("== ${jobName} #${buildNumber}: ${jenkinsfile}")
        try {
            mainScript.run()
        } catch (Throwable t) {
            failure = failure ?: t
            currentBuild.result = 'FAILURE'
            StringWriter trace = new StringWriter()
            t.printStackTrace(new PrintWriter(trace))
            log("!! ${trace}")
        }
        if (currentBuild.result == null) {
            currentBuild.result = 'SUCCESS'
        }
        log("== result ${currentBuild.result}, description: ${currentBuild.description}")
    }

    void loadLibrary(Map args) {
        libraries << args
        Map retriever = (Map) args.retriever
        String libraryPath = retriever?.libraryPath ?: ''
        varsDir = new File(new File(libraryRoot, libraryPath), 'vars')
        if (!varsDir.isDirectory()) {
            throw new PipelineError("library ${args.identifier}: no vars/ under libraryPath `${libraryPath}`")
        }
        events << "library:${args.identifier}:${libraryPath}".toString()
    }

    boolean hasVar(String name) {
        return varsDir != null && new File(varsDir, "${name}.groovy").isFile()
    }

    /** One instance per library step per build, as Jenkins does. */
    Script var(String name) {
        Script script = vars[name]
        if (script == null) {
            Binding binding = new Binding()
            binding.setVariable('__rt', this)
            GroovyShell shell = new GroovyShell(PipelineScript.classLoader, binding, compilerConfiguration())
            script = shell.parse(new File(varsDir, "${name}.groovy"))
            script.run()
            vars[name] = script
        }
        return script
    }

    // --- Declarative model ---------------------------------------------------------------

    static class PipelineModel {
        Object agent
        List<Map> options = []
        Closure environment
        List<Map> parameters = []
        List<StageModel> stages = []
        Map<String, Closure> post = [:]
    }

    static class StageModel {
        String name
        Object agent
        List<Map> options = []
        Closure environment
        Closure input
        Closure steps
        List<StageModel> stages = []
        Map<String, Closure> post = [:]
    }

    static final Object NONE = 'none'
    static final Object ANY = 'any'

    /** Keywords shared by `pipeline {}` and `stage {}`. */
    static abstract class SectionBuilder {
        Object getNone() { return NONE }
        Object getAny() { return ANY }
        abstract void setAgentValue(Object agent)
        abstract List<Map> getOptionList()
        abstract void setEnvironmentClosure(Closure c)
        abstract List<StageModel> getStageList()
        abstract Map<String, Closure> getPostMap()

        void agent(Object value) {
            if (value instanceof Closure) {
                AgentBuilder b = new AgentBuilder()
                dsl((Closure) value, b)
                setAgentValue([label: b.label])
            } else {
                setAgentValue(value)
            }
        }
        void options(Closure c) { dsl(c, new OptionsBuilder(list: optionList)) }
        void environment(Closure c) { setEnvironmentClosure(c) }
        void stages(Closure c) { dsl(c, new StagesBuilder(list: stageList)) }
        void post(Closure c) { dsl(c, new PostBuilder(map: postMap)) }
        void when(Closure condition) { throw new UnsupportedOperationException("the harness does not model `when` (${condition})") }
    }

    static class PipelineBuilder extends SectionBuilder {
        PipelineModel spec = new PipelineModel()
        void setAgentValue(Object agent) { spec.agent = agent }
        List<Map> getOptionList() { return spec.options }
        void setEnvironmentClosure(Closure c) { spec.environment = c }
        List<StageModel> getStageList() { return spec.stages }
        Map<String, Closure> getPostMap() { return spec.post }
        void parameters(Closure c) { dsl(c, new ParametersBuilder(list: spec.parameters)) }
    }

    static class StageBuilder extends SectionBuilder {
        StageModel spec
        void setAgentValue(Object agent) { spec.agent = agent }
        List<Map> getOptionList() { return spec.options }
        void setEnvironmentClosure(Closure c) { spec.environment = c }
        List<StageModel> getStageList() { return spec.stages }
        Map<String, Closure> getPostMap() { return spec.post }
        void input(Closure c) { spec.input = c }
        void steps(Closure c) { spec.steps = c }
    }

    static class StagesBuilder {
        List<StageModel> list
        void stage(String name, Closure c) {
            StageModel spec = new StageModel(name: name)
            dsl(c, new StageBuilder(spec: spec))
            if ((spec.steps == null) == spec.stages.isEmpty()) {
                throw new PipelineError("stage '${name}' needs exactly one of steps or stages")
            }
            list << spec
        }
    }

    static class AgentBuilder {
        String label
        void label(String value) { label = value }
    }

    /** Variables assigned in an `environment {}` block, in order. */
    static class EnvironmentBuilder extends GroovyObjectSupport {
        Map<String, String> values = [:]
        @Override void setProperty(String name, Object value) { values[name] = value?.toString() }
    }

    static void dsl(Closure c, Object delegate) {
        Closure copy = (Closure) c.clone()
        copy.delegate = delegate
        copy.resolveStrategy = Closure.DELEGATE_FIRST
        copy.call()
    }

    /** Runs a steps/script/post body: every name resolves on the script, as in Jenkins. */
    Object runSteps(Closure c) {
        Closure copy = (Closure) c.clone()
        copy.delegate = new StepsDelegate(script: mainScript, rt: this)
        copy.resolveStrategy = Closure.DELEGATE_FIRST
        return copy.call()
    }

    /** `steps {}` may hold `script {}`; everything else is a step on the script. */
    static class StepsDelegate extends GroovyObjectSupport {
        PipelineScript script
        JenkinsRuntime rt
        Object script(Closure c) { return rt.runSteps(c) }
        @Override Object getProperty(String name) { return script.getProperty(name) }
        @Override void setProperty(String name, Object value) { script.setProperty(name, value) }
        @Override Object invokeMethod(String name, Object args) {
            if (name == 'script' && args instanceof Object[] && ((Object[]) args).length == 1 && ((Object[]) args)[0] instanceof Closure) {
                return script((Closure) ((Object[]) args)[0])
            }
            return script.invokeMethod(name, args)
        }
    }

    void runDeclarative(PipelineScript script, Closure body) {
        mainScript = script
        PipelineBuilder builder = new PipelineBuilder()
        dsl(body, builder)
        PipelineModel spec = builder.spec
        spec.options.each { Map o -> pipelineOptions[(String) o.name] = o.args }
        spec.parameters.each { Map p -> params[(String) p.name] = paramOverrides.containsKey(p.name) ? paramOverrides[p.name] : p.defaultValue }
        events << "pipeline:agent=${spec.agent}".toString()
        if (spec.environment != null) {
            EnvironmentBuilder env = new EnvironmentBuilder()
            dsl(spec.environment, env)
            env.values.each { k, v -> globalEnv[k] = v }
        }
        boolean failed = false
        Closure stagesAndPost = {
            for (StageModel stage in spec.stages) {
                if (failed) {
                    skip(stage, [])
                } else if (!runStage(stage, [])) {
                    failed = true
                }
            }
            runPost(spec.post, failed)
        }
        if (spec.agent instanceof Map) {
            onAgent((String) ((Map) spec.agent).label, 'pipeline', stagesAndPost)
        } else if (spec.agent == ANY) {
            onAgent('any', 'pipeline', stagesAndPost)
        } else {
            stagesAndPost.call()
        }
        if (failed) {
            currentBuild.result = 'FAILURE'
        }
    }

    private void skip(StageModel stage, List<String> parents) {
        List<String> path = parents + [stage.name]
        stageLog << [name: stage.name, path: path.join(' / '), status: 'SKIPPED']
        events << "stage-skipped:${stage.name}".toString()
        stage.stages.each { StageModel s -> skip(s, path) }
    }

    /** Runs a stage with its options, agent, environment, input, body and post; false if it failed. */
    private boolean runStage(StageModel stage, List<String> parents) {
        List<String> path = parents + [stage.name]
        Map entry = [name: stage.name, path: path.join(' / '), status: 'RUNNING']
        stageLog << entry
        events << "stage:${stage.name}".toString()
        log("-- stage ${entry.path}")
        boolean failed = false
        try {
            // Stage options wrap everything else: a lock is taken before the agent.
            Closure body = { runStageBody(stage, path) }
            for (Map option in stage.options.reverse()) {
                Closure inner = body
                if (option.name == 'lock') {
                    Map lockArgs = option.args instanceof Map ? (Map) option.args : [resource: option.args]
                    body = { lock(lockArgs, inner) }
                } else if (option.name == 'timeout') {
                    body = { events << "timeout:${option.args}".toString(); inner.call() }
                } else {
                    throw new PipelineError("stage option `${option.name}` is not modelled")
                }
            }
            failed = !body.call()
        } catch (Throwable t) {
            failed = true
            failure = failure ?: t
            log("!! stage ${stage.name}: ${t}")
        }
        entry.status = failed ? 'FAILURE' : 'SUCCESS'
        events << "stage-end:${stage.name}:${entry.status}".toString()
        return !failed
    }

    private boolean runStageBody(StageModel stage, List<String> path) {
        Closure withAgent = { Closure c -> c.call() }
        if (stage.agent instanceof Map) {
            withAgent = { Closure c -> onAgent((String) ((Map) stage.agent).label, stage.name, c) }
        } else if (stage.agent == ANY) {
            withAgent = { Closure c -> onAgent('any', stage.name, c) }
        }
        boolean ok = true
        withAgent {
            Map<String, String> stageEnv = [:]
            if (stage.environment != null) {
                EnvironmentBuilder env = new EnvironmentBuilder()
                dsl(stage.environment, env)
                stageEnv.putAll(env.values)
            }
            withOverlay(stageEnv) {
                if (stage.input != null) {
                    InputBuilder ib = new InputBuilder()
                    dsl(stage.input, ib)
                    Object answer = input(ib.values)
                    if (ib.values.submitterParameter) {
                        overlays[-1][(String) ib.values.submitterParameter] = answer.toString()
                    }
                }
                boolean failed = false
                try {
                    if (stage.steps != null) {
                        runSteps(stage.steps)
                    } else {
                        for (StageModel child in stage.stages) {
                            if (failed) {
                                skip(child, path)
                            } else if (!runStage(child, path)) {
                                failed = true
                            }
                        }
                    }
                } catch (Throwable t) {
                    failed = true
                    failure = failure ?: t
                    log("!! ${stage.name}: ${t}")
                }
                runPost(stage.post, failed)
                ok = !failed
            }
        }
        return ok
    }

    private void runPost(Map<String, Closure> post, boolean failed) {
        List<String> order = ['always', failed ? 'failure' : 'success', failed ? 'unsuccessful' : null, 'cleanup']
        for (String condition in order) {
            if (condition != null && post[condition] != null) {
                events << "post:${condition}".toString()
                try {
                    runSteps(post[condition])
                } catch (Throwable t) {
                    failure = failure ?: t
                    currentBuild.result = 'FAILURE'
                    log("!! post ${condition}: ${t}")
                }
            }
        }
    }

    /** An executor on an agent: the workspace, the agent's variables, the default checkout. */
    private Object onAgent(String label, String where, Closure body) {
        events << "node:${label}:${where}".toString()
        executors++
        try {
            events << 'checkout:scm'
            return body.call()
        } finally {
            executors--
            events << "node-released:${label}:${where}".toString()
        }
    }

    // --- environment -----------------------------------------------------------------------

    String lookupEnv(String name) {
        for (int i = overlays.size() - 1; i >= 0; i--) {
            if (overlays[i].containsKey(name)) {
                return overlays[i][name]
            }
        }
        if (globalEnv.containsKey(name)) {
            return globalEnv[name]
        }
        if (executors > 0) {
            if (name == 'WORKSPACE') {
                return workspace.path
            }
            return agentEnv[name]
        }
        return null
    }

    void setGlobalEnv(String name, Object value) {
        globalEnv[name] = value?.toString()
    }

    /** What `sh` sees: the process, the agent, the build, then every enclosing scope. */
    Map<String, String> effectiveEnv() {
        Map<String, String> all = new LinkedHashMap<String, String>(baseEnv)
        all.putAll(agentEnv)
        all.WORKSPACE = workspace.path
        all.putAll(globalEnv)
        overlays.each { Map<String, String> o -> all.putAll(o) }
        return all.findAll { k, v -> v != null }
    }

    Object withOverlay(Map<String, String> values, Closure body) {
        overlays << new LinkedHashMap<String, String>(values)
        try {
            return body.call()
        } finally {
            overlays.remove(overlays.size() - 1)
        }
    }

    Object withEnv(List vars, Closure body) {
        Map<String, String> values = [:]
        vars.each { Object kv ->
            String s = "${kv}"
            int eq = s.indexOf('=')
            values[s.substring(0, eq)] = s.substring(eq + 1)
        }
        return withOverlay(values, body)
    }

    Object withCredentials(List bindings, Closure body) {
        Map<String, String> values = [:]
        bindings.each { Object b ->
            Map binding = (Map) b
            if (binding.type != 'usernamePassword') {
                throw new PipelineError("credential binding ${binding.type} is not modelled")
            }
            List<String> pair = credentials[(String) binding.credentialsId]
            if (pair == null) {
                throw new PipelineError("Could not find credentials entry with ID '${binding.credentialsId}'")
            }
            values[(String) binding.usernameVariable] = pair[0]
            values[(String) binding.passwordVariable] = pair[1]
            events << "withCredentials:${binding.credentialsId}".toString()
        }
        return withOverlay(values, body)
    }

    // --- steps -------------------------------------------------------------------------------

    void log(String line) {
        if (logFile != null) {
            logFile << line << '\n'
        }
    }

    Object sh(Map args) {
        String script = (String) args.script
        if (executors == 0) {
            throw new PipelineError('sh needs an executor: Required context class hudson.FilePath is missing')
        }
        File file = java.nio.file.Files.createTempFile('jenkins-sh-', '.sh').toFile()
        file.text = script
        // As Jenkins: `sh -xe script`, in the workspace.
        List<String> command = ['/bin/sh', '-xe', file.path]
        ProcessBuilder pb = new ProcessBuilder(command).directory(workspace)
        pb.environment().clear()
        pb.environment().putAll(effectiveEnv())
        Process process = pb.start()
        StringBuilder stdout = new StringBuilder()
        StringBuilder stderr = new StringBuilder()
        Thread out = Thread.start { process.inputStream.eachLine('UTF-8') { String l -> synchronized (stdout) { stdout.append(l).append('\n') } } }
        Thread err = Thread.start { process.errorStream.eachLine('UTF-8') { String l -> synchronized (stderr) { stderr.append(l).append('\n') } } }
        int code = process.waitFor()
        out.join()
        err.join()
        file.delete()
        Map<String, String> shownEnv = effectiveEnv().findAll { k, v -> k.startsWith('RELEASE_') && !k.contains('PASSWORD') }
        Map call = [script: script, exit: code, stdout: stdout.toString(), stderr: stderr.toString(), env: shownEnv,
                    executors: executors]
        shCalls << call
        events << "sh:${firstLine(script)}:exit ${code}".toString()
        log("[sh] ${script.trim()}\n[exit ${code}]\n${stdout}${stderr}")
        if (code != 0 && !args.returnStatus) {
            throw new ScriptFailure(code)
        }
        if (args.returnStatus) {
            return code
        }
        if (args.returnStdout) {
            return stdout.toString()
        }
        return null
    }

    static String firstLine(String script) {
        List<String> lines = script.readLines()*.trim()
        return lines.find { it.contains('$RELEASE_BIN') } ?: (lines.find { it } ?: '')
    }

    Object lock(Map args, Closure body) {
        String resource = (String) (args.resource ?: args.label)
        locks << [resource: resource, executorsWhenTaken: executors]
        events << "lock:${resource}".toString()
        try {
            return body.call()
        } finally {
            events << "unlock:${resource}".toString()
        }
    }

    void milestone(Map args) {
        milestones << args
        events << "milestone:${args.ordinal}".toString()
    }

    Object input(Map args) {
        inputs << (args + [executorsHeld: executors, answeredBy: approver])
        events << "input:${args.message}".toString()
        log("[input] ${args.message} -> ${approver}")
        return args.submitterParameter ? approver : null
    }

    /** Ant-style patterns (comma-separated, `**`, `*`), relative to the workspace. */
    List<File> glob(String patterns) {
        List<File> found = []
        patterns.split(',').each { String raw ->
            String p = raw.trim()
            String regex = p.replace('.', '\\.').replace('**/', '\u0001').replace('**', '\u0002')
                    .replace('*', '[^/]*').replace('\u0001', '(.*/)?').replace('\u0002', '.*')
            workspace.eachFileRecurse { File f ->
                String rel = workspace.toPath().relativize(f.toPath())
                if (f.isFile() && rel ==~ regex && !found.contains(f)) {
                    found << f
                }
            }
        }
        return found.sort { it.path }
    }

    void archiveArtifacts(Map args) {
        List<File> files = glob((String) args.artifacts)
        if (files.isEmpty() && !args.allowEmptyArchive) {
            throw new PipelineError("No artifacts found that match the file pattern \"${args.artifacts}\"")
        }
        List<String> rel = files.collect { workspace.toPath().relativize(it.toPath()).toString() }
        archived << [pattern: args.artifacts, files: rel, contents: files.collectEntries { [(workspace.toPath().relativize(it.toPath()).toString()): it.text] }]
        events << "archive:${rel}".toString()
    }

    Map junit(Map args) {
        List<File> files = glob((String) args.testResults)
        if (files.isEmpty() && !args.allowEmptyResults) {
            throw new PipelineError("No test report files were found. Configuration error? (${args.testResults})")
        }
        int tests = 0, failures = 0, errors = 0, skipped = 0
        List<String> failed = []
        files.each { File f ->
            GPathResult xml = new XmlSlurper().parse(f)
            xml.depthFirst().findAll { it.name() == 'testcase' }.each { GPathResult tc ->
                tests++
                if (!tc.failure.isEmpty()) { failures++; failed << "${tc.@classname}.${tc.@name}".toString() }
                if (!tc.error.isEmpty()) { errors++; failed << "${tc.@classname}.${tc.@name}".toString() }
                if (!tc.skipped.isEmpty()) { skipped++ }
            }
        }
        Map report = [pattern: args.testResults, files: files.collect { it.name }, tests: tests, failures: failures,
                      errors: errors, skipped: skipped, failed: failed]
        junitReports << report
        events << "junit:${args.testResults}:${tests} tests, ${failures + errors} failed".toString()
        if (failures + errors > 0 && (currentBuild.result == null || currentBuild.result == 'SUCCESS')) {
            currentBuild.result = 'UNSTABLE'
        }
        return report
    }

    String readFile(Map args) {
        File f = new File(workspace, (String) args.file)
        if (!f.isFile()) {
            throw new PipelineError("java.nio.file.NoSuchFileException: ${f}")
        }
        return f.getText('UTF-8')
    }

    void writeFile(Map args) {
        File f = new File(workspace, (String) args.file)
        f.parentFile.mkdirs()
        f.setText((String) args.text, 'UTF-8')
    }

    boolean fileExists(String file) {
        return new File(workspace, file).exists()
    }
}
