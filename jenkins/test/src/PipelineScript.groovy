/* groovylint-disable AbstractClassWithoutAbstractMethod */
// Abstract: Script.run() is the compiled script body.
/**
 * Base class of every script the harness runs (the Jenkinsfiles and the library's vars/*.groovy):
 * the Jenkins steps they may call, each forwarded to the JenkinsRuntime in the binding.
 * Nothing of the library or the Jenkinsfile is stubbed: only Jenkins' own steps are here.
 */
abstract class PipelineScript extends Script {

    JenkinsRuntime getRt() {
        return (JenkinsRuntime) getBinding().getVariable('__rt')
    }

    // --- global variables Jenkins provides -----------------------------------------------

    Object getEnv() { return getRt().envVars }

    Map getParams() { return getRt().params }

    JenkinsRuntime.CurrentBuild getCurrentBuild() { return getRt().currentBuild }

    Object getScm() { return [kind: 'harness-scm'] }

    /** Library steps (vars/NAME.groovy) by name; bare environment variables, as Jenkins allows. */
    @Override
    Object getProperty(String name) {
        if (getBinding().hasVariable(name)) {
            return getBinding().getVariable(name)
        }
        if (getRt().hasVar(name)) {
            return getRt().var(name)
        }
        try {
            return super.getProperty(name)
        } catch (MissingPropertyException e) {
            String value = getRt().lookupEnv(name)
            if (value != null) {
                return value
            }
            throw e
        }
    }

    /** Library steps called as steps: releaseBuild(version: ...). */
    def methodMissing(String name, Object args) {
        if (getRt().hasVar(name)) {
            return getRt().var(name).invokeMethod('call', args)
        }
        throw new MissingMethodException(name, getClass(), args as Object[])
    }

    // --- Declarative Pipeline --------------------------------------------------------------

    void pipeline(Closure body) { getRt().runDeclarative(this, body) }

    void library(Map args) { getRt().loadLibrary(args) }

    Map legacySCM(Map args) { return [retriever: 'legacySCM'] + args }

    Map modernSCM(Map args) { return [retriever: 'modernSCM'] + args }

    // --- steps -----------------------------------------------------------------------------

    Object sh(String script) { return getRt().sh([script: script]) }

    Object sh(Map args) { return getRt().sh(args) }

    void echo(Object message) { getRt().log("[echo] ${message}") }

    void error(String message) { throw new JenkinsRuntime.PipelineError(message) }

    Object withEnv(List vars, Closure body) { return getRt().withEnv(vars, body) }

    Map usernamePassword(Map args) { return [type: 'usernamePassword'] + args }

    Object withCredentials(List bindings, Closure body) { return getRt().withCredentials(bindings, body) }

    Object lock(String resource, Closure body) { return getRt().lock([resource: resource], body) }

    Object lock(Map args, Closure body) { return getRt().lock(args, body) }

    void milestone(Map args) { getRt().milestone(args) }

    void milestone(Integer ordinal) { getRt().milestone([ordinal: ordinal]) }

    Object input(Map args) { return getRt().input(args) }

    Object input(String message) { return getRt().input([message: message]) }

    void archiveArtifacts(String artifacts) { getRt().archiveArtifacts([artifacts: artifacts]) }

    void archiveArtifacts(Map args) { getRt().archiveArtifacts(args) }

    Object junit(String testResults) { return getRt().junit([testResults: testResults]) }

    Object junit(Map args) { return getRt().junit(args) }

    String readFile(String file) { return getRt().readFile([file: file]) }

    String readFile(Map args) { return getRt().readFile(args) }

    void writeFile(Map args) { getRt().writeFile(args) }

    boolean fileExists(String file) { return getRt().fileExists(file) }

    Object timeout(Map args, Closure body) {
        getRt().events << "timeout:${args}".toString()
        return body.call()
    }

    boolean isUnix() { return true }
}
