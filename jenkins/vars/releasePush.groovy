// releasePush(version: '1.4.0-b42', services: [], credentialsId: 'release-registry'):
// `release push`, then archives the release manifest. See releasePush.txt.

void call(Map args = [:]) {
    String version = args.version ?: env.RELEASE_VERSION
    if (!version) {
        error('releasePush: pass version (or set RELEASE_VERSION)')
    }
    List extra = ["RELEASE_VERSION=${version}", "RELEASE_SERVICES=${(args.services ?: []).join(' ')}"]
    if (args.gitCommit) {
        extra << "GIT_COMMIT=${args.gitCommit}"
    }
    releaseCli.withRelease(args, extra, true) {
        int code = releaseCli.execute('''
            set --
            for service in $RELEASE_SERVICES; do set -- "$@" --service "$service"; done
            "$RELEASE_BIN" push --version "$RELEASE_VERSION" "$@"
        ''')
        try {
            releaseCli.describe(version, null, code == 0 ? 'pushed' : 'push failed')
        } finally {
            releaseCli.archiveRecords()
        }
        releaseCli.failOn('release push', code)
    }
}
