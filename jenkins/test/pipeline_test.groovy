/* groovylint-disable CatchThrowable, PrintStackTrace, SystemExit */
// A test driver: it reports every failure, prints what broke, and sets the exit status.
// Runs the Jenkinsfile, the promote-only pipeline and the shared library for real against the
// testbed (Docker Engine, Swarm, TLS registry), with only Jenkins' own steps stood in for by
// JenkinsRuntime. Run through jenkins/test/run, which sets up the environment:
//   REPO, RELEASE_BIN, RELEASE_REGISTRY, RELEASE_REGISTRY_CA,
//   RELEASE_REGISTRY_USERNAME/PASSWORD (the testbed's; bound only through withCredentials).
//
// Scenarios, on one throwaway copy of examples/hestino (own stack names and ports, own state
// directory), in order:
//   happy   Jenkinsfile: every stage passes; PROD runs exactly DEV's digests.
//   broken  Jenkinsfile with a DEV check that fails: the pipeline stops before approval.
//   refused promote.Jenkinsfile with the broken build's version: the gate refuses; PROD untouched.
//   invalid promote.Jenkinsfile without VERSION: fails before asking anyone to approve.

import groovy.json.JsonSlurper

String repo = System.getenv('REPO') ?: new File('.').canonicalPath
String bin = System.getenv('RELEASE_BIN') ?: "${repo}/target/debug/release"
String password = System.getenv('RELEASE_REGISTRY_PASSWORD')
String username = System.getenv('RELEASE_REGISTRY_USERNAME')
assert password && username: 'RELEASE_REGISTRY_USERNAME/PASSWORD not set: eval "$(scripts/testbed env)"'
assert System.getenv('RELEASE_REGISTRY'): 'RELEASE_REGISTRY not set: eval "$(scripts/testbed env)"'

int failures = 0
List<String> results = []
void check(boolean ok, String what, List<String> results, Object detail = null) {
    results << "${ok ? 'ok  ' : 'FAIL'} ${what}${ok || detail == null ? '' : ": ${detail}"}".toString()
}

// --- the subcommands the pipeline needs --------------------------------------------------
String help = [bin, '--help'].execute().text
List<String> needed = ['build', 'push', 'deploy', 'check', 'promote', 'audit']
List<String> missing = needed.findAll { String c -> !(help =~ /(?m)^\s+${c}\s/) }
if (missing) {
    println "MISSING: ${bin} has no subcommand ${missing.join(', ')}; the stages calling it must fail below."
}

// --- a throwaway project -------------------------------------------------------------------
String id = Long.toString(System.currentTimeMillis() % 100000000L, 36)
File root = File.createTempDir('release-jenkins-', '')
File state = new File(root, 'state')
File logDir = new File(repo, 'target/jenkins-harness')
logDir.mkdirs()
int freePort() {
    ServerSocket s = new ServerSocket(0)
    int p = s.localPort
    s.close()
    return p
}
int devPort = freePort()
int prodPort = freePort()
String devStack = "jh${id}-dev"
String prodStack = "jh${id}-prod"

/** A workspace: this repository's Jenkinsfiles and examples/hestino, stacks and ports made unique. */
File workspace(File root, String name, String repo, Map<String, String> edits) {
    File ws = new File(root, name)
    ['Jenkinsfile', 'jenkins/pipelines/promote.Jenkinsfile'].each { String f ->
        new File(ws, f).parentFile.mkdirs()
        new File(ws, f).bytes = new File(repo, f).bytes
    }
    Process cp = ['cp', '-a', "${repo}/examples", ws.path].execute()
    assert cp.waitFor() == 0: "copying examples/: ${cp.err.text}"
    Set<String> applied = [] as Set
    ['release.toml', 'stack.dev.yml', 'stack.prod.yml'].each { String f ->
        File file = new File(ws, "examples/hestino/${f}")
        String text = file.text
        edits.each { String from, String to ->
            if (text.contains(from)) {
                applied << from
                text = text.replace(from, to)
            }
        }
        file.text = text
    }
    assert applied == edits.keySet(): "examples/hestino changed: edits not applicable: ${edits.keySet() - applied}"
    return ws
}
Map<String, String> unique = [
        'stack = "hestino-dev"' : "stack = \"${devStack}\"".toString(),
        'stack = "hestino-prod"': "stack = \"${prodStack}\"".toString(),
        '18080'                 : devPort.toString(),
        '28080'                 : prodPort.toString(),
]
// The DEV check that breaks: /health answers {"status":"ok"}, this check wants something else.
Map<String, String> brokenDevCheck = unique + [
        'json_equals = "ok"\nmax_latency = "500ms"\ntimeout = "2s"\nretry_interval = "1s"\ndeadline = "30s"\n\n[[environments.dev.checks]]\nkind = "tcp"':
                'json_equals = "not-ok"\nmax_latency = "500ms"\ntimeout = "2s"\nretry_interval = "1s"\ndeadline = "3s"\n\n' +
                '[[environments.dev.checks]]\nkind = "tcp"',
]

/** A Jenkins stand-in for workspace ws: the testbed agent, credentials and approver. */
JenkinsRuntime runtime(File ws, File state, Map<String, String> agent, File log) {
    // The library comes from this checkout, as legacySCM(scm) takes it from the build's revision.
    File repo = new File(System.getenv('REPO') ?: '.')
    Map<String, String> base = System.getenv().findAll { k, v -> !k.startsWith('RELEASE_') && k != 'GIT_COMMIT' }
    return new JenkinsRuntime(
            workspace: ws,
            libraryRoot: repo,
            baseEnv: base,
            agentEnv: [
                    RELEASE_BIN        : agent.bin,
                    RELEASE_STATE_DIR  : state.path,
                    RELEASE_REGISTRY   : System.getenv('RELEASE_REGISTRY'),
                    RELEASE_REGISTRY_CA: System.getenv('RELEASE_REGISTRY_CA'),
                    NODE_NAME          : 'harness-agent',
            ].findAll { k, v -> v != null },
            credentials: ['release-registry': [agent.username, agent.password]],
            approver: 'alice',
            logFile: log,
    )
}

List<String> leafStages(JenkinsRuntime rt) {
    return rt.stageLog.findAll { !(it.name in ['DEV', 'PROD']) }.collect { "${it.name}=${it.status}".toString() }
}

/** The image each service of a stack runs, from the Swarm: `service -> repo:tag@sha256:...`. */
/** The Docker context of the server each stack runs on (the example's release.toml names them). */
String contextOf(String stack) {
    return stack.endsWith('-prod') ? 'release-testbed-prod' : 'release-testbed-dev'
}

Map<String, String> liveImages(String stack) {
    Map<String, String> images = [:]
    ['api', 'admin-api', 'app', 'admin-app', 'worker', 'redis'].each { String s ->
        Process p = ['docker', '--context', contextOf(stack), 'service', 'inspect', '--format',
                     '{{.Spec.TaskTemplate.ContainerSpec.Image}}', "${stack}_${s}"].execute()
        String out = p.text.trim()
        p.waitFor()
        images[s] = p.exitValue() == 0 ? out : null
    }
    return images
}

String digestOf(String image) {
    return image?.contains('@') ? image.substring(image.indexOf('@') + 1) : null
}

/** The secret must not reach any `sh` command line, any output, or anything recorded. */
void secretNeverShown(JenkinsRuntime rt, String password, String scenario, List<String> results) {
    List<String> where = []
    rt.shCalls.eachWithIndex { Map c, int i ->
        if (c.script.contains(password)) { where << "sh #${i} script".toString() }
        if (c.stdout.contains(password) || c.stderr.contains(password)) { where << "sh #${i} output".toString() }
    }
    if (rt.events.any { it.contains(password) }) { where << 'events' }
    if ((rt.currentBuild.description ?: '').contains(password)) { where << 'description' }
    if (rt.archived.any { Map a -> a.contents.values().any { it.contains(password) } }) { where << 'archived files' }
    check(where.isEmpty() && !rt.shCalls.isEmpty(),
            "${scenario}: the registry password appears in no sh command line, output, record or artifact", results, where)
}

int index(List<String> events, String prefix) {
    return events.findIndexOf { it.startsWith(prefix) }
}

Map<String, String> agent = [bin: bin, username: username, password: password]
List<String> cleanup = []
long started = System.currentTimeMillis()
String happyVersion = null
String brokenVersion = null
try {
    // === happy: the whole Jenkinsfile ====================================================
    File ws = workspace(root, 'happy', repo, unique)
    JenkinsRuntime rt = runtime(ws, state, agent, new File(logDir, 'happy.log'))
    cleanup.addAll([devStack, prodStack])
    int build = (int) (System.currentTimeMillis().intdiv(1000L) % 100000000L)
    happyVersion = "1.4.0-b${build}"
    new File(ws, 'examples/hestino/VERSION').text = '1.4.0\n'
    long t0 = System.currentTimeMillis()
    rt.runJenkinsfile(new File(ws, 'Jenkinsfile'), build, 'hestino/main')
    println "happy: ${rt.currentBuild.result} in ${(System.currentTimeMillis() - t0) / 1000} s; ${leafStages(rt)}"
    if (rt.failure) { println "happy: first failure: ${rt.failure}" }

    check(rt.libraries.size() == 1 && rt.libraries[0].retriever.libraryPath == 'jenkins/',
            'happy: the library is loaded with libraryPath jenkins/', results, rt.libraries)
    check(['buildDiscarder', 'timeout', 'disableConcurrentBuilds'].every { rt.pipelineOptions.containsKey(it) },
            'happy: options buildDiscarder, timeout, disableConcurrentBuilds', results, rt.pipelineOptions.keySet())
    List<String> expectedOrder = ['Build', 'Push', 'Deploy DEV', 'Check DEV', 'Approve PROD', 'Promote PROD', 'Check PROD']
    check(leafStages(rt) == expectedOrder.collect { "${it}=SUCCESS".toString() },
            'happy: stages Build, Push, Deploy DEV, Check DEV, Approve PROD, Promote PROD, Check PROD all pass, in order', results, leafStages(rt))
    check(rt.currentBuild.result == 'SUCCESS', 'happy: the build succeeds', results, rt.currentBuild.result)
    check(rt.currentBuild.description?.contains(happyVersion) && rt.currentBuild.description?.contains('prod'),
            'happy: the description names the version and PROD', results, rt.currentBuild.description)

    // Approval: stage-level input, no executor held, milestone before and after, approver passed on.
    check(rt.inputs.size() == 1 && rt.inputs[0].submitter && rt.inputs[0].submitterParameter == 'APPROVER',
            'happy: one input with submitter and submitterParameter', results, rt.inputs)
    check(rt.inputs.size() == 1 && rt.inputs[0].executorsHeld == 0, 'happy: no executor is held while waiting for approval', results, rt.inputs)
    int inputAt = index(rt.events, 'input:')
    check(inputAt > 0 && index(rt.events, 'milestone:10') in 0..<inputAt && index(rt.events, 'milestone:20') > inputAt,
            'happy: a milestone before the approval and one after it', results, rt.events.findAll { it.startsWith('milestone') || it.startsWith('input') })
    // PROD: inside the lock, taken before the agent; the approver reaches --approved-by.
    int lockAt = rt.events.indexOf('lock:hestino-prod')
    check(lockAt > inputAt && lockAt < index(rt.events, 'node:release:PROD') && lockAt < rt.events.indexOf('stage:Promote PROD')
            && rt.events.indexOf('unlock:hestino-prod') > rt.events.indexOf('stage-end:Check PROD:SUCCESS')
            && rt.locks.size() == 1 && rt.locks[0].executorsWhenTaken == 0,
            'happy: Promote PROD and Check PROD run inside lock(hestino-prod), taken before the PROD agent', results, rt.locks)
    Map promote = rt.shCalls.find { it.script.contains(' promote ') }
    check(promote?.env?.RELEASE_APPROVER == 'alice' && promote.script.contains('--approved-by "$RELEASE_APPROVER"'),
            'happy: release promote gets --approved-by from the input submitter', results, promote?.env)

    // Credentials: bound only through withCredentials, for the steps that talk to the registry.
    check(rt.events.count { it == 'withCredentials:release-registry' } == 3,
            'happy: registry credentials bound by withCredentials for push, deploy, promote only', results,
            rt.events.findAll { it.startsWith('withCredentials') })
    // Values reach sh only as environment variables: no script text holds the version.
    check(!rt.shCalls.isEmpty() && !rt.shCalls.any { it.script.contains(happyVersion) },
            'happy: no sh script has a value interpolated into it', results, rt.shCalls.find { it.script.contains(happyVersion) }?.script)
    secretNeverShown(rt, password, 'happy', results)

    // JUnit: published for deploy, check and promote.
    Map<String, Map> reports = rt.junitReports.collectEntries { [(it.pattern): it] }
    ['release-reports/deploy-dev.xml', 'release-reports/check-dev.xml', 'release-reports/promote-prod.xml', 'release-reports/check-prod.xml'].each { String p ->
        Map r = reports[p]
        check(r != null && r.tests > 0 && r.failures + r.errors == 0, "happy: junit ${p} published, all passing", results, r)
    }
    // Archived: manifest, rendered stacks, JUnit, ledger head.
    Set<String> archivedFiles = rt.archived.collectMany { it.files } as Set
    ["release-artifacts/releases/${happyVersion}.json", "release-artifacts/stacks/dev/${happyVersion}.yml",
     "release-artifacts/stacks/prod/${happyVersion}.yml", 'release-reports/check-dev.xml', 'release-reports/promote-prod.xml',
     'release-artifacts/ledger-head.txt'].each { String f ->
        check(archivedFiles.contains(f.toString()), "happy: archived ${f}", results, archivedFiles)
    }
    String head = new File(ws, 'release-artifacts/ledger-head.txt').with { it.exists() ? it.text.trim() : '' }
    Process verify = [bin, '--config', "${ws}/examples/hestino/release.toml", '--state-dir', state.path, 'audit', 'verify', '--expect-head', head].execute()
    verify.waitFor()
    check(head.startsWith('sha256:') && verify.exitValue() == 0, 'happy: the archived ledger head is the ledger\'s head', results, head)

    String prodAudit = rt.archived.collect { it.contents['release-artifacts/audit-prod.json'] }.find { it } ?: ''
    check(prodAudit.contains('alice'), 'happy: the archived PROD audit records the approver', results, prodAudit.take(300))

    // PROD runs DEV's digests, as the Swarm says.
    Map<String, String> dev = liveImages(devStack)
    Map<String, String> prod = liveImages(prodStack)
    Map manifest = new JsonSlurper().parse(new File(state, "releases/${happyVersion}.json")) as Map
    check(dev.values().every { it?.contains('@sha256:') }
            && dev.collectEntries { k, v -> [k, digestOf(v)] } == prod.collectEntries { k, v -> [k, digestOf(v)] },
            'happy: every PROD service runs the digest DEV runs', results, [dev: dev, prod: prod])
    check(manifest.toString().contains(digestOf(prod.api) ?: 'none'), 'happy: ... which is the digest in the release manifest', results, prod.api)
    Map<String, String> prodAfterHappy = prod

    // === broken: a DEV check fails ========================================================
    File broken = workspace(root, 'broken', repo, brokenDevCheck)
    JenkinsRuntime rb = runtime(broken, state, agent, new File(logDir, 'broken.log'))
    int build2 = build + 1
    brokenVersion = "1.4.0-b${build2}"
    t0 = System.currentTimeMillis()
    rb.runJenkinsfile(new File(broken, 'Jenkinsfile'), build2, 'hestino/main')
    println "broken: ${rb.currentBuild.result} in ${(System.currentTimeMillis() - t0) / 1000} s; ${leafStages(rb)}"
    check(leafStages(rb) == ['Build=SUCCESS', 'Push=SUCCESS', 'Deploy DEV=SUCCESS', 'Check DEV=FAILURE',
                             'Approve PROD=SKIPPED', 'Promote PROD=SKIPPED', 'Check PROD=SKIPPED'],
            'broken: a failing DEV check stops the pipeline; approval and PROD are skipped', results, leafStages(rb))
    check(rb.inputs.isEmpty() && !rb.events.contains('lock:hestino-prod') && !rb.events.contains('milestone:10'),
            'broken: nobody is asked to approve, no lock, no milestone passed', results, rb.events.findAll { it =~ /^(input|lock|milestone)/ })
    Map devCheck = rb.junitReports.find { it.pattern == 'release-reports/check-dev.xml' }
    check(devCheck != null && devCheck.failures + devCheck.errors > 0,
            'broken: the failing DEV check JUnit is still published, with its failures', results, devCheck)
    check(rb.currentBuild.result == 'FAILURE' && rb.failure?.message?.contains('exit 1'),
            'broken: the build fails, saying the checks failed (exit 1)', results, "${rb.currentBuild.result} ${rb.failure}")
    check(liveImages(prodStack) == prodAfterHappy, 'broken: PROD is untouched', results)
    secretNeverShown(rb, password, 'broken', results)

    // === refused: promote-only pipeline with the version whose DEV check failed ===============
    File refused = workspace(root, 'refused', repo, unique)
    JenkinsRuntime rr = runtime(refused, state, agent, new File(logDir, 'refused.log'))
    rr.paramOverrides = [VERSION: brokenVersion]
    rr.runJenkinsfile(new File(refused, 'jenkins/pipelines/promote.Jenkinsfile'), 7, 'hestino/promote')
    println "refused: ${rr.currentBuild.result}; ${leafStages(rr)}"
    check(leafStages(rr) == ['Validate VERSION=SUCCESS', 'Approve PROD=SUCCESS', 'Promote PROD=FAILURE', 'Check PROD=SKIPPED'],
            'refused: promote.Jenkinsfile asks approval, then the gate refuses the version DEV failed', results, leafStages(rr))
    Map gate = rr.junitReports.find { it.pattern == 'release-reports/promote-prod.xml' }
    check(gate != null && gate.failures + gate.errors > 0 && gate.failed.any { it.contains('check') },
            'refused: the gate JUnit is published, failing on the DEV check', results, gate)
    check(rr.failure?.message?.contains('exit 1'), 'refused: the stage fails with exit 1 (gate refused)', results, rr.failure)
    check(liveImages(prodStack) == prodAfterHappy, 'refused: PROD is untouched', results)
    secretNeverShown(rr, password, 'refused', results)

    // === invalid: promote-only pipeline without a VERSION ===================================
    File invalid = workspace(root, 'invalid', repo, unique)
    JenkinsRuntime ri = runtime(invalid, state, agent, new File(logDir, 'invalid.log'))
    ri.runJenkinsfile(new File(invalid, 'jenkins/pipelines/promote.Jenkinsfile'), 8, 'hestino/promote')
    check(leafStages(ri) == ['Validate VERSION=FAILURE', 'Approve PROD=SKIPPED', 'Promote PROD=SKIPPED', 'Check PROD=SKIPPED'] && ri.inputs.isEmpty(),
            'invalid: promote.Jenkinsfile without VERSION fails before asking for approval', results, leafStages(ri))
} catch (Throwable t) {
    results << "FAIL harness error: ${t}".toString()
    t.printStackTrace()
} finally {
    cleanup.each { String stack -> ['docker', '--context', contextOf(stack), 'stack', 'rm', stack].execute().waitFor() }
    if (!System.getenv('KEEP_HARNESS_DIR')) {
        root.deleteDir()
    }
}

results.each { println it }
failures = results.count { it.startsWith('FAIL') }
println "${results.size() - failures} passed, ${failures} failed in ${(System.currentTimeMillis() - started) / 1000} s (logs: ${logDir})"
if (missing) {
    println "INCOMPLETE: ${bin} lacks ${missing.join(', ')}: the pipeline cannot pass until it has them."
}
System.exit(failures == 0 && !missing ? 0 : 1)
