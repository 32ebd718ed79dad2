// Builders for the Declarative keywords that take free-form calls (options, parameters,
// post conditions, input), top-level because Groovy 2.4 allows no methodMissing on a
// static inner class. Used by JenkinsRuntime.

class OptionsBuilder {
    List<Map> list
    Map logRotator(Map args) { return [logRotator: args] }
    def methodMissing(String name, Object args) {
        Object[] a = (Object[]) args
        list << [name: name, args: a.length == 1 ? a[0] : (a.length == 0 ? null : a.toList())]
        return null
    }
}

class ParametersBuilder {
    List<Map> list
    def methodMissing(String name, Object args) {
        Object[] a = (Object[]) args
        list << ([type: name] + (Map) a[0])
        return null
    }
}

class PostBuilder {
    Map<String, Closure> map
    def methodMissing(String name, Object args) {
        Object[] a = (Object[]) args
        if (!(name in ['always', 'success', 'failure', 'unstable', 'aborted', 'cleanup', 'unsuccessful'])) {
            throw new JenkinsRuntime.PipelineError("post condition `${name}` is not modelled")
        }
        map[name] = (Closure) a[0]
        return null
    }
}

class InputBuilder {
    Map values = [:]
    def methodMissing(String name, Object args) {
        Object[] a = (Object[]) args
        values[name] = a[0]
        return null
    }
}

