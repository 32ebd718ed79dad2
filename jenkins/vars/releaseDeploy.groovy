// releaseDeploy(env: 'dev', version: '1.4.0-b42', timeout: '3m', junit: 'deploy-dev.xml'):
// `release deploy`, publishing its JUnit and archiving the rendered stack whatever the
// outcome. See releaseDeploy.txt.

void call(Map args = [:]) {
    String version = args.version ?: env.RELEASE_VERSION
    String target = args.env
    if (!version || !target) {
        error('releaseDeploy: pass env and version')
    }
    String report = releaseCli.junitPath(args, 'deploy', target)
    List extra = ["RELEASE_VERSION=${version}", "RELEASE_ENV=${target}", "RELEASE_JUNIT=${report}",
                  "RELEASE_TIMEOUT=${args.timeout ?: ''}"]
    String withTimeout = '"$RELEASE_BIN" deploy --env "$RELEASE_ENV" --version "$RELEASE_VERSION" --timeout "$RELEASE_TIMEOUT" --junit "$RELEASE_JUNIT"'
    String withDefaultTimeout = '"$RELEASE_BIN" deploy --env "$RELEASE_ENV" --version "$RELEASE_VERSION" --junit "$RELEASE_JUNIT"'
    releaseCli.withRelease(args, extra, true) {
        int code = -1
        try {
            code = releaseCli.execute(args.timeout ? withTimeout : withDefaultTimeout)
        } finally {
            releaseCli.publishJUnit(report)
            releaseCli.archiveRecords()
            releaseCli.describe(version, target, code == 0 ? 'deployed' : (code == 4 ? 'rolled back' : 'deploy failed'))
        }
        releaseCli.failOn("release deploy to ${target}", code)
    }
}
