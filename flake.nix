{
  description = "promptlam: reproduction of 'Vision-Language Models Unlock Task-Centric Latent Actions'";

  # nixos-24.11 at its final commit (2025-06-30); flake.lock pins the same revision and its hash.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/50ab793786d9de88ee30ec4e4c24fb4236fc2674";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      # Python packages come from PyPI at the exact pins of pyproject.toml (many, e.g. metaworld
      # 3.1.1 and mujoco 3.3.0, are not in nixpkgs); Nix pins the interpreter and the native
      # libraries their wheels load: libstdc++, zlib, and OpenGL/EGL for headless MuJoCo.
      runtimeEnv = pkgs: {
        LD_LIBRARY_PATH = pkgs.lib.makeLibraryPath [
          pkgs.stdenv.cc.cc.lib pkgs.zlib pkgs.libGL pkgs.libglvnd pkgs.mesa
        ];
        __EGL_VENDOR_LIBRARY_DIRS = "${pkgs.mesa}/share/glvnd/egl_vendor.d";
        MUJOCO_GL = "egl";
        PYTHON = "${pkgs.python311}/bin/python3";
      };

      tools = pkgs: [ pkgs.python311 pkgs.gnumake pkgs.git ];

      # `nix run .#smoke` / `nix run .#test`: the README's two commands inside the pinned toolchain.
      makeApp = pkgs: target: {
        type = "app";
        program = "${pkgs.writeShellApplication {
          name = "promptlam-${target}";
          runtimeInputs = tools pkgs;
          runtimeEnv = runtimeEnv pkgs;
          text = "exec make ${target}";
        }}/bin/promptlam-${target}";
      };
    in
    {
      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell ((runtimeEnv pkgs) // {
          packages = tools pkgs;
          shellHook = ''
            make setup && source .venv/bin/activate
          '';
        });
      });

      apps = forAllSystems (pkgs: {
        smoke = makeApp pkgs "smoke";
        test = makeApp pkgs "test";
        default = makeApp pkgs "smoke";
      });
    };
}
