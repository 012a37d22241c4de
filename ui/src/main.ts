import { mount } from "./app";
import { HttpTransport } from "./transport/http";

const root = document.getElementById("app");
if (root) mount(root, new HttpTransport());
