// The conventions every release* step shares: how the `release` binary is found, which
// environment it reads, how registry credentials reach it, what its exit codes mean, and
// what gets archived. Jenkinsfiles call the release* steps, not this.
//
// Rules kept here so that no step can break them on its own:
//   - every `sh` script is a single-quoted literal: values reach the shell only through
//     environment variables (withEnv / withCredentials), never through Groovy interpolation;
//   - registry credentials are bound with withCredentials into RELEASE_REGISTRY_USERNAME and
//     RELEASE_REGISTRY_PASSWORD, the variables the CLI reads, and only for the steps that
//     talk to the registry;
//   - the state directory (RELEASE_STATE_DIR) is the agent's, shared by every job that
//     releases the project; a step refuses to run without it.

/** Default Jenkins credentials ID (username with password) for the registry. */
String defaultCredentialsId() {
    return 'release-registry'
}

/**
 * Runs body with the environment the CLI reads. args: config, stateDir, registry, bin,
 * credentialsId; withRegistryCredentials: bind the registry credentials around body.
 */
void withRelease(Map args, List extraEnv, boolean withRegistryCredentials, Closure body) {
    List vars = []
    if (args.config) {
        vars << "RELEASE_CONFIG=${args.config}"
    }
    if (args.stateDir) {
        vars << "RELEASE_STATE_DIR=${args.stateDir}"
    }
    if (args.registry) {
        vars << "RELEASE_REGISTRY=${args.registry}"
    }
    vars << "RELEASE_BIN=${args.bin ?: (env.RELEASE_BIN ?: 'release')}"
    vars.addAll(extraEnv)
    withEnv(vars) {
        String credentialsId = args.containsKey('credentialsId') ? args.credentialsId : (env.RELEASE_CREDENTIALS_ID ?: defaultCredentialsId())
        if (withRegistryCredentials && credentialsId) {
            withCredentials([usernamePassword(credentialsId: credentialsId,
                    usernameVariable: 'RELEASE_REGISTRY_USERNAME',
                    passwordVariable: 'RELEASE_REGISTRY_PASSWORD')]) {
                body()
            }
        } else {
            body()
        }
    }
}

/** Runs a `release` invocation (a single-quoted script) and returns its exit code. */
int execute(String script) {
    // The state directory must be the agent's shared one: a workspace-local default would
    // split the records between jobs (the promote-only job would see no DEV evidence).
    // Not every command creates its JUnit file's directory.
    String preamble = '''
        : "${RELEASE_STATE_DIR:?is not set on this agent: see docs/jenkins.md}"
        if [ -n "${RELEASE_JUNIT:-}" ]; then mkdir -p "$(dirname "$RELEASE_JUNIT")"; fi
    '''
    return sh(script: preamble + script, returnStatus: true) as int
}

/** Fails the stage with what the exit code means (the exit code contract in ARCHITECTURE.md). */
void failOn(String what, int code) {
    if (code != 0) {
        error("${what} failed: exit ${code}, ${meaning(code)}")
    }
}

String meaning(int code) {
    switch (code) {
        case 1: return 'a negative verdict (checks failed, gate refused or drift)'
        case 2: return 'bad usage, config or input (nothing was changed)'
        case 3: return 'infrastructure failure (registry, engine, network or timeout)'
        case 4: return 'the deploy failed and was rolled back'
        default: return 'unexpected exit code'
    }
}

/** Where a step writes its JUnit report, unless the caller names a file. */
String junitPath(Map args, String stage, String environment) {
    return args.junit ?: "release-reports/${stage}-${environment}.xml"
}

/** Publishes a JUnit report; a missing file (the command failed before writing) is not an error. */
void publishJUnit(String path) {
    junit(testResults: path, allowEmptyResults: true)
}

/**
 * Copies the records of RELEASE_VERSION (manifest, and the stack rendered for RELEASE_ENV
 * when set) from the state directory into release-artifacts/ and archives them with the
 * JUnit reports. Missing records are skipped: a failed step archives what exists.
 */
void archiveRecords() {
    sh '''
        state="${RELEASE_STATE_DIR:?is not set on this agent: see docs/jenkins.md}"
        mkdir -p release-artifacts/releases release-reports
        if [ -f "$state/releases/$RELEASE_VERSION.json" ]; then
            cp "$state/releases/$RELEASE_VERSION.json" release-artifacts/releases/
        fi
        if [ -n "${RELEASE_ENV:-}" ] && [ -f "$state/stacks/$RELEASE_ENV/$RELEASE_VERSION.yml" ]; then
            mkdir -p "release-artifacts/stacks/$RELEASE_ENV"
            cp "$state/stacks/$RELEASE_ENV/$RELEASE_VERSION.yml" "release-artifacts/stacks/$RELEASE_ENV/"
        fi
    '''
    archiveArtifacts(artifacts: 'release-artifacts/**, release-reports/**', allowEmptyArchive: true, fingerprint: true)
}

/** Sets the build's description to what it shipped where, e.g. `1.4.0-b42 -> prod: promoted`. */
void describe(String version, String environment, String outcome) {
    String where = environment ? " -> ${environment}" : ''
    currentBuild.description = "${version}${where}: ${outcome}"
}
