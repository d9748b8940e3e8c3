_ldap__health__check() {
    local i cur prev opts cmd
    COMPREPLY=()
    if [[ "${BASH_VERSINFO[0]}" -ge 4 ]]; then
        cur="$2"
    else
        cur="${COMP_WORDS[COMP_CWORD]}"
    fi
    prev="$3"
    cmd=""
    opts=""

    for i in "${COMP_WORDS[@]:0:COMP_CWORD}"
    do
        case "${cmd},${i}" in
            ",$1")
                cmd="ldap__health__check"
                ;;
            *)
                ;;
        esac
    done

    case "${cmd}" in
        ldap__health__check)
            opts="-f -t -w -c -v -h -V --conffile --once --interval --timeout --warning --critical --verbose --debug --syslog --format --prometheus-textfile --canary --query --postfix-config --cert-warn --cert-crit --replica-lag --policy --policy-cache --self-test --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 1 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --conffile)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                -f)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --interval)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                -t)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --warning)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                -w)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --critical)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                -c)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --format)
                    COMPREPLY=($(compgen -W "nagios json" -- "${cur}"))
                    return 0
                    ;;
                --prometheus-textfile)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --canary)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --query)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --postfix-config)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --cert-warn)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --cert-crit)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --replica-lag)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --policy-cache)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
    esac
}

if [[ "${BASH_VERSINFO[0]}" -eq 4 && "${BASH_VERSINFO[1]}" -ge 4 || "${BASH_VERSINFO[0]}" -gt 4 ]]; then
    complete -F _ldap__health__check -o nosort -o bashdefault -o default ldap-health-check
else
    complete -F _ldap__health__check -o bashdefault -o default ldap-health-check
fi
