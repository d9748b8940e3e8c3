fn main() -> std::process::ExitCode {
    ldap_health_check::main_with_args(std::env::args_os())
}
