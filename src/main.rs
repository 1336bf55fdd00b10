fn main() -> std::process::ExitCode {
    yanzhen::cli::main()
}
