import { mount } from "./app";
import { HttpTransport } from "./transport/http";
import { TauriTransport, inTauri } from "./transport/tauri";

// One UI, two transports: Tauri IPC inside the desktop app, HTTP + SSE against `tend serve`.
const root = document.getElementById("app");
if (root) mount(root, inTauri() ? new TauriTransport() : new HttpTransport());
