// releaseCheck(env: 'dev', junit: 'check-dev.xml'): `release check`, publishing its JUnit
// whatever the outcome. See releaseCheck.txt.

void call(Map args = [:]) {
    String target = args.env
    if (!target) {
        error('releaseCheck: pass env')
    }
    String version = args.version ?: (env.RELEASE_VERSION ?: '')
    String report = releaseCli.junitPath(args, 'check', target)
    List extra = ["RELEASE_ENV=${target}", "RELEASE_JUNIT=${report}", "RELEASE_VERSION=${version}"]
    // Checks talk to the services, not the registry: no credentials.
    releaseCli.withRelease(args, extra, false) {
        int code = -1
        try {
            code = releaseCli.execute('"$RELEASE_BIN" check --env "$RELEASE_ENV" --junit "$RELEASE_JUNIT"')
        } finally {
            releaseCli.publishJUnit(report)
            archiveArtifacts(artifacts: 'release-reports/**', allowEmptyArchive: true)
            releaseCli.describe(version ?: '?', target, code == 0 ? 'checks passed' : 'checks failed')
        }
        releaseCli.failOn("release check of ${target}", code)
    }
}
